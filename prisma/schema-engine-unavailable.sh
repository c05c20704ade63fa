#!/bin/sh
# Stand-in for Prisma's schema engine, which could not be downloaded on this machine (see prisma/schema-engine.ts).
echo "Prisma's schema engine is not installed here: apply migrations with \`dispatcher migrate\`." >&2
exit 1
