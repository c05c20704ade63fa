#!/bin/bash
# First start of the MariaDB container only: KM's own database and user. The dispatcher's user (granted
# `dispatcher\_%` in mariadb-init.sql) cannot reach km_credentials, and KM's user reaches nothing else.
# KM migrates its tables at start, so its user holds DDL on its database; see deploy/README.md to narrow it afterwards.
set -eu
if [ -z "${KM_DB_PASSWORD:-}" ]; then
  echo "KM_DB_PASSWORD is not set: KM's database user cannot be created" >&2
  exit 1
fi
km_password=${KM_DB_PASSWORD//\\/\\\\}
km_password=${km_password//\'/\\\'}
docker_process_sql --database=mysql <<EOSQL
CREATE DATABASE IF NOT EXISTS km_credentials CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'km'@'%' IDENTIFIED BY '${km_password}';
GRANT ALL PRIVILEGES ON km_credentials.* TO 'km'@'%';
FLUSH PRIVILEGES;
EOSQL
