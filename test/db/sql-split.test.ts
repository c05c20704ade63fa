// Unit tests for the migration statement splitter, the URL helpers and ids.
import { describe, expect, it } from "vitest";
import { isId, newId } from "../../src/db/ids.js";
import { splitSqlStatements, stripSqlComments } from "../../src/db/sql-split.js";
import { databaseNameFromUrl, parseDatabaseUrl, redactDatabaseUrl, withDatabase } from "../../src/db/url.js";

describe("splitSqlStatements", () => {
  it("splits Prisma's layout: `--` comments and `;`-terminated statements", () => {
    const script = "-- CreateTable\nCREATE TABLE `a` (\n    `id` INT NOT NULL\n) DEFAULT CHARACTER SET utf8mb4;\n\n-- AddForeignKey\nALTER TABLE `a` ADD CONSTRAINT `x` FOREIGN KEY (`id`) REFERENCES `b`(`id`);\n";
    expect(splitSqlStatements(script)).toEqual([
      "-- CreateTable\nCREATE TABLE `a` (\n    `id` INT NOT NULL\n) DEFAULT CHARACTER SET utf8mb4",
      "-- AddForeignKey\nALTER TABLE `a` ADD CONSTRAINT `x` FOREIGN KEY (`id`) REFERENCES `b`(`id`)",
    ]);
  });

  it("ignores ; inside strings, quoted identifiers and comments", () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s; fine', 'back\\\\slash\\'; still');",
      "CREATE TABLE `odd;name` (id INT); -- trailing; comment",
      "/* block; comment */ SELECT 1 # hash; comment",
      ";",
      "SELECT 2",
    ].join("\n");
    expect(splitSqlStatements(script).map(stripSqlComments)).toEqual([
      "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s; fine', 'back\\\\slash\\'; still')",
      "CREATE TABLE `odd;name` (id INT)",
      "SELECT 1",
      "SELECT 2",
    ]);
  });

  it("treats `--` without a following space as an operator, like MySQL", () => {
    expect(splitSqlStatements("SELECT 1--1; SELECT 2;")).toEqual(["SELECT 1--1", "SELECT 2"]);
  });

  it("drops comment-only statements but keeps /*! executable comments */", () => {
    expect(splitSqlStatements("-- nothing here;\n/* nor here */;\n/*!40101 SET NAMES utf8mb4 */;")).toEqual(["/*!40101 SET NAMES utf8mb4 */"]);
  });

  it("keeps a trigger's or routine's BEGIN … END body whole, with its IF, CASE and loops", () => {
    const trigger = [
      "CREATE TRIGGER `t_no_delete` BEFORE DELETE ON `t` FOR EACH ROW",
      "BEGIN",
      "  IF OLD.`time` >= UTC_TIMESTAMP(3) - INTERVAL 7 DAY THEN",
      "    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'not; yet -- END';",
      "  END IF;",
      "  SET @x = CASE WHEN OLD.id > 1 THEN 1 ELSE 2 END;",
      "  CASE @x WHEN 1 THEN SET @y = 1; ELSE BEGIN END; END CASE;",
      "  l: LOOP LEAVE l; END LOOP l;",
      "END",
    ].join("\n");
    const script = `CREATE TABLE t (id INT, ended_at INT);\n${trigger};\nSELECT 1; -- END;\nCREATE DEFINER='root'@'%' PROCEDURE p() BEGIN SELECT 1; SELECT 2; END;\nINSERT INTO t VALUES (1, 2)`;
    expect(splitSqlStatements(script)).toEqual([
      "CREATE TABLE t (id INT, ended_at INT)",
      trigger,
      "SELECT 1",
      "-- END;\nCREATE DEFINER='root'@'%' PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
      "INSERT INTO t VALUES (1, 2)",
    ]);
    // A one-statement body (no BEGIN) ends at its `;`, as before.
    expect(splitSqlStatements("CREATE TRIGGER a BEFORE DELETE ON t FOR EACH ROW SIGNAL SQLSTATE '45000'; SELECT 1")).toEqual([
      "CREATE TRIGGER a BEFORE DELETE ON t FOR EACH ROW SIGNAL SQLSTATE '45000'",
      "SELECT 1",
    ]);
  });

  it("rejects unterminated quotes and comments, and DELIMITER", () => {
    expect(() => splitSqlStatements("SELECT 'oops;")).toThrow(/unterminated ' quote/);
    expect(() => splitSqlStatements("SELECT 1 /* oops;")).toThrow(/unterminated \/\* comment/);
    expect(() => splitSqlStatements("DELIMITER //\nCREATE TRIGGER x //")).toThrow(/DELIMITER/);
  });
});

describe("database URLs", () => {
  it("parse into driver settings and name their database", () => {
    expect(parseDatabaseUrl("mysql://app:p%40ss@db.internal:3307/dispatcher_provisioning")).toEqual({ host: "db.internal", port: 3307, user: "app", password: "p@ss", database: "dispatcher_provisioning" });
    expect(parseDatabaseUrl("mariadb://127.0.0.1")).toMatchObject({ port: 3306, user: "root", password: "", database: "" });
    expect(databaseNameFromUrl("mysql://root@127.0.0.1:3306/x_y?connectTimeout=1")).toBe("x_y");
    expect(() => databaseNameFromUrl("mysql://root@127.0.0.1:3306/")).toThrow(/names no database/);
    expect(() => parseDatabaseUrl("postgres://u:secret@h/db")).toThrow(/not a database URL: postgres:\/\/u:\*\*\*@h\/db/);
  });

  it("never show the password", () => {
    expect(redactDatabaseUrl("mysql://app:s3cret@db:3306/p")).toBe("mysql://app:***@db:3306/p");
    expect(redactDatabaseUrl("mysql://root@db:3306/p")).toBe("mysql://root@db:3306/p");
  });

  it("point at another database on the same server", () => {
    expect(withDatabase("mysql://app:pw@db:3306/a?x=1", "b")).toBe("mysql://app:pw@db:3306/b?x=1");
  });
});

describe("ids", () => {
  it("are 26-character ULIDs that sort by creation time", () => {
    const a = newId(1_700_000_000_000);
    const b = newId(1_700_000_000_001);
    expect(isId(a)).toBe(true);
    expect(a).toHaveLength(26);
    expect(a < b).toBe(true);
    expect(a.slice(0, 10)).toBe("01HF7YAT00");
    expect(new Set(Array.from({ length: 1000 }, () => newId())).size).toBe(1000);
  });
});
