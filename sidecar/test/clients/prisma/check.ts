// Usage: DATABASE_URL=... DATABASE_URL_READ=... tsx check.ts WRITER
// A real Prisma 7 client with @prisma/extension-read-replicas over the bundle's two pooled URLs.
// Prints one JSON line saying which server (pg_is_in_recovery()) and which role answered each
// kind of call, asked from inside the queries themselves.
import { PrismaPg } from '@prisma/adapter-pg';
import { readReplicas } from '@prisma/extension-read-replicas';
import { PrismaClient } from './generated/prisma/client.ts';

const writer = process.argv[2] ?? 'prisma';
const primary = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL! }) });
const replica = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL_READ! }) });
const prisma = primary.$extends(readReplicas({ replicas: [replica] }));

type Who = { in_recovery: boolean; usr: string };
const raw = 'SELECT pg_is_in_recovery() AS in_recovery, current_user::text AS usr';
const who = (rows: Who[]) => `${rows[0]!.in_recovery ? 'replica' : 'primary'} as ${rows[0]!.usr}`;
const out: Record<string, unknown> = {};
try {
  const id = BigInt(Date.now()) * 1000n + BigInt(process.pid % 1000);
  await prisma.ledger.create({ data: { id, writer } });
  out.findMany = who(await prisma.server_role.findMany());
  out.primaryFindMany = who(await prisma.$primary().server_role.findMany());
  out.rawDefault = who(await prisma.$queryRawUnsafe<Who[]>(raw));
  out.transaction = who(await prisma.$transaction(async (tx) => tx.server_role.findMany()));
  out.replicaRaw = who(await prisma.$replica().$queryRawUnsafe<Who[]>(raw));
  out.writeThroughReplica = await prisma.$replica().ledger.create({ data: { id: id + 1n, writer } }).then(() => 'ok', (e: Error) => e.message.split('\n').filter(Boolean).at(-1));
  // The row written through the primary, read back through the replica once streamed.
  for (let i = 0; i < 200 && out.createdSeenOnReplica !== true; i++) {
    out.createdSeenOnReplica = (await prisma.ledger.count({ where: { id } })) === 1;
    if (!out.createdSeenOnReplica) await new Promise((r) => setTimeout(r, 10));
  }
} finally {
  await primary.$disconnect();
  await replica.$disconnect();
}
console.log(JSON.stringify(out));
