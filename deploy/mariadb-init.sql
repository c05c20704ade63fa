-- The dispatcher's own account may create and migrate its three databases and nothing else.
GRANT ALL PRIVILEGES ON `dispatcher\_%`.* TO 'dispatcher'@'%';
FLUSH PRIVILEGES;
