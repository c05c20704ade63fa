// `dispatcher clouds list|get|create|delete`: the clouds accounts connect to, through the dispatcher's API (the
// client's address and API key come from client.address and client.token / DISPATCHER_CLIENT_TOKEN).
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { DispatcherClients } from "../client/index.js";
import { Cloud, type Region } from "../gen/proto/dispatcher/v1/provisioning.js";
import { json, table, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";

/** Runs one subcommand of a command group with the group's --address and the subcommand's --json. */
export type GroupRun = (name: string, fn: (c: DispatcherClients, io: CommandIo, o: ClientCommandOptions) => Promise<number | void>) => (cmd: Command) => Promise<void>;

export function groupRunner(group: Command, configFile: () => string | undefined, setExit: (code: number) => void): GroupRun {
  return (name, fn) => async (cmd) => {
    const o: ClientCommandOptions = { configFile: configFile(), address: group.opts<{ address?: string }>().address, json: cmd.opts<{ json?: boolean }>().json };
    // Messages name the command run: "dispatcher clouds get: NOT_FOUND: …".
    setExit(await withClient(`${name} ${cmd.name()}`, o, (c, io) => fn(c, io, o)));
  };
}

/** Every page of a listing. */
export async function allPages<T>(fetch: (pageToken: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const all: T[] = [];
  let token = "";
  do {
    const page = await fetch(token);
    all.push(...page.items);
    token = page.next;
  } while (token);
  return all;
}

/** `id`, `id:name` or `id:name:dc1,dc2` → a region. */
function parseRegion(value: string, previous: Region[] = []): Region[] {
  const [id = "", name = "", dcs = ""] = value.split(":");
  if (id === "") throw new CommanderInvalidArgument("a region as id[:name[:data-center,…]]");
  return [...previous, { id, name, dataCenters: dcs.split(",").map((d) => d.trim()).filter(Boolean) }];
}

function printClouds(io: CommandIo, o: ClientCommandOptions, clouds: Cloud[]): void {
  if (o.json) io.out(json({ clouds: clouds.map((c) => Cloud.toJSON(c)) }));
  else io.out(table(["ID", "NAME", "DRIVER", "ENDPOINT", "REGIONS"], clouds.map((c) => [c.id, c.name, c.driver, c.endpoint, c.regions.map((r) => r.id).join(",") || "-"])));
}

export function addCloudCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const clouds = program.command("clouds").description("list, inspect, create and delete clouds (a provider's endpoint and driver)").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const run = groupRunner(clouds, configFile, setExit);
  clouds
    .command("list")
    .description("every cloud")
    .option("--driver <name>", "only clouds of this driver")
    .option("--json", "JSON instead of a table", false)
    .action((opts: { driver?: string }, cmd: Command) =>
      run("clouds", async (c, io, o) => {
        const all = await allPages(async (pageToken) => {
          const page = await c.clouds.listClouds({ pageSize: 1000, pageToken, driver: opts.driver ?? "" });
          return { items: page.clouds, next: page.nextPageToken };
        });
        printClouds(io, o, all);
      })(cmd),
    );
  clouds
    .command("get <id>")
    .description("one cloud with its regions and etag")
    .option("--json", "JSON instead of a table", false)
    .action((id: string, _o: unknown, cmd: Command) =>
      run("clouds", async (c, io, o) => {
        const cloud = (await c.clouds.getCloud({ id })).cloud as Cloud;
        if (o.json) return io.out(json(Cloud.toJSON(cloud)));
        const regions = cloud.regions.map((r) => `${r.id}${r.name && r.name !== r.id ? ` (${r.name})` : ""}${r.dataCenters.length ? ` [${r.dataCenters.join(",")}]` : ""}`);
        io.out(table(["FIELD", "VALUE"], [["id", cloud.id], ["name", cloud.name], ["driver", cloud.driver], ["endpoint", cloud.endpoint], ["regions", regions.join("; ") || "-"], ["etag", cloud.etag]]));
      })(cmd),
    );
  clouds
    .command("create")
    .description("create a cloud (admins)")
    .requiredOption("-n, --name <name>", "name (unique)")
    .requiredOption("-d, --driver <driver>", "driver that talks to the provider, e.g. local or aws")
    .requiredOption("-e, --endpoint <url>", "https URL of the provider's API")
    .option("-r, --region <id[:name[:dcs]]>", "a region (repeat for more)", parseRegion, [])
    .option("--json", "JSON instead of a table", false)
    .action((opts: { name: string; driver: string; endpoint: string; region: Region[] }, cmd: Command) =>
      run("clouds", async (c, io, o) => printClouds(io, o, [(await c.clouds.createCloud({ name: opts.name, driver: opts.driver, endpoint: opts.endpoint, regions: opts.region })).cloud as Cloud]))(cmd),
    );
  clouds
    .command("delete <id>")
    .description("delete a cloud without accounts (admins)")
    .option("--etag <etag>", "fail (ABORTED) if the cloud changed since this etag was read")
    .action((id: string, opts: { etag?: string }, cmd: Command) =>
      run("clouds", async (c, io) => {
        await c.clouds.deleteCloud({ id, etag: opts.etag ?? "" });
        io.out(`${id} deleted\n`);
      })(cmd),
    );
}
