#!/usr/bin/env bash
# What a campaign's message writes cost PostgreSQL, and which part of them: MESSAGES messages
# of one campaign written as the fan-out writes them (statements of 5,000) and marked sent as
# the sends' outcomes mark them (statements of 114, a typical outcome group), in one session,
# timed by psql. Each variant switches one part off, in a scratch database; the schema as
# migrated is the baseline, measured in turns with the variants (ROUNDS rounds), and each
# line gives the median and its ratio to the baseline's.
# Starts a PostgreSQL of its own on a free port (data under .esteira-bench-message-writes/,
# removed at the end). Nothing else runs meanwhile: the figures are one core's work.
# Usage: MESSAGES=40000 ROUNDS=3 bench/message_writes.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
cd "$ESTEIRA_ROOT"
MESSAGES="${MESSAGES:-40000}"
ROUNDS="${ROUNDS:-3}"
STACK="$ESTEIRA_ROOT/.esteira-bench-message-writes"
trap 'pg_stop "$STACK" >/dev/null 2>&1 || true; pg_destroy "$STACK"; rm -rf "$STACK"' EXIT
ensure_packages
mkdir -p "$STACK"
PORT=$(free_port 25400)
pg_start "$STACK" "$PORT"
export ESTEIRA_DATABASE_URL="postgres://esteira@127.0.0.1:$PORT/esteira" ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"
say "building (release)"
swift build -c release --product processor >/dev/null
"$(swift build -c release --show-bin-path)/processor" migrate >/dev/null 2>&1 || die "migrate failed"
db() { psql "$ESTEIRA_DATABASE_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }

# One owner, instance, campaign and MESSAGES contacts; the message and job ids, and the
# outcome groups' arrays, made up front.
db <<SQL
INSERT INTO api_principals (id, name, role, token_hash) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', 'user', decode(repeat('ab', 32), 'hex'));
INSERT INTO instancias (id, owner_id, nome, base_url, token, webhook_secret, rate_limit, burst)
VALUES ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'bench', 'http://127.0.0.2', 't', 's', 1000, 100);
INSERT INTO contatos (id, owner_id, nome, telefone)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'c' || g, '+5511' || g FROM generate_series(1, $MESSAGES) g;
INSERT INTO campanhas (id, owner_id, instance_id, nome, mensagem, total)
VALUES ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',
        'bench', 'Olá! Temos uma novidade para você nesta semana.', $MESSAGES);
CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id AS contato, gen_random_uuid() AS id, gen_random_uuid() AS job FROM contatos;
CREATE TABLE bench_groups AS SELECT (n - 1) / 114 AS g, array_agg(id) AS ids, array_agg('p-' || id) AS providers FROM bench_ids GROUP BY 1;
CREATE INDEX ON bench_groups (g);
SQL
# The function as migrated, to put back after a variant.
db -c "SELECT pg_get_functiondef('messaging_record_changes'::regproc)" >"$STACK/record_changes.sql"

# Prints the seconds taken by the fan-out's inserts and by the outcomes' updates.
measure() {
  db <<SQL | tr '\n' ' '
TRUNCATE mensagens, messaging_changes;
CHECKPOINT;
CREATE TEMP TABLE t (step text, seconds float8);
DO \$\$ DECLARE began timestamptz := clock_timestamp(); BEGIN
  FOR i IN 0..($MESSAGES - 1) / 5000 LOOP
    INSERT INTO mensagens (id, owner_id, contato_id, instance_id, campanha_id, job_id, direcao, conteudo)
    SELECT t.id, '00000000-0000-0000-0000-000000000001', t.contato, '00000000-0000-0000-0000-000000000002',
           '00000000-0000-0000-0000-000000000003', t.job, 'saida', 'Olá! Temos uma novidade para você nesta semana.'
    FROM bench_ids t WHERE t.n > i * 5000 AND t.n <= (i + 1) * 5000;
  END LOOP;
  INSERT INTO t VALUES ('insert', extract(epoch FROM clock_timestamp() - began));
END \$\$;
DO \$\$ DECLARE began timestamptz := clock_timestamp(); ids uuid[]; providers text[]; BEGIN
  FOR i IN 0..($MESSAGES - 1) / 114 LOOP
    SELECT x.ids, x.providers INTO ids, providers FROM bench_groups x WHERE x.g = i;
    UPDATE mensagens m SET status = 'enviada', provider_message_id = t.provider_id, enviada_em = now(), updated_at = now(), erro = NULL
    FROM unnest(ids, array_fill('00000000-0000-0000-0000-000000000001'::uuid, ARRAY[cardinality(ids)]), providers) AS t(id, owner_id, provider_id)
    WHERE m.id = t.id AND m.owner_id = t.owner_id AND m.status IN ('pendente', 'cancelada');
  END LOOP;
  INSERT INTO t VALUES ('update', extract(epoch FROM clock_timestamp() - began));
END \$\$;
SELECT seconds FROM t ORDER BY step;
SQL
}

# Each variant: what it switches on, and what switches it off again.
names=("as migrated" "no change rows" "change rows without the row's JSON" "no foreign keys")
setup=(
  ""
  "ALTER TABLE mensagens DISABLE TRIGGER mensagens_inserted; ALTER TABLE mensagens DISABLE TRIGGER mensagens_updated;"
  "SELECT 1" # the function is rewritten below
  "ALTER TABLE mensagens DROP CONSTRAINT mensagens_owner_id_fkey, DROP CONSTRAINT mensagens_contato_id_fkey,
     DROP CONSTRAINT mensagens_instance_id_fkey, DROP CONSTRAINT mensagens_campanha_id_fkey;"
)
teardown=(
  ""
  "ALTER TABLE mensagens ENABLE TRIGGER mensagens_inserted; ALTER TABLE mensagens ENABLE TRIGGER mensagens_updated;"
  ""
  "ALTER TABLE mensagens ADD FOREIGN KEY (owner_id) REFERENCES api_principals (id),
     ADD FOREIGN KEY (contato_id) REFERENCES contatos (id) ON DELETE CASCADE,
     ADD FOREIGN KEY (instance_id) REFERENCES instancias (id) ON DELETE SET NULL,
     ADD FOREIGN KEY (campanha_id) REFERENCES campanhas (id) ON DELETE SET NULL;"
)
declare -A inserts updates
say "$MESSAGES messages, $ROUNDS rounds of ${#names[@]} variants"
for ((r = 1; r <= ROUNDS; r++)); do
  for i in "${!names[@]}"; do
    [ -z "${setup[$i]}" ] || db -c "${setup[$i]}" >/dev/null
    [ "$i" != 2 ] || sed "s/to_jsonb(r)/'{}'::jsonb/g" "$STACK/record_changes.sql" | db >/dev/null
    read -r ins upd <<<"$(measure)"
    [ -z "${teardown[$i]}" ] || db -c "${teardown[$i]}" >/dev/null
    [ "$i" != 2 ] || db <"$STACK/record_changes.sql" >/dev/null
    inserts[$i]+="$ins "
    updates[$i]+="$upd "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
base_ins=$(median <<<"${inserts[0]}")
base_upd=$(median <<<"${updates[0]}")
for i in "${!names[@]}"; do
  ins=$(median <<<"${inserts[$i]}")
  upd=$(median <<<"${updates[$i]}")
  awk -v name="${names[$i]}" -v n="$MESSAGES" -v i="$ins" -v u="$upd" -v bi="$base_ins" -v bu="$base_upd" 'BEGIN {
    printf "%-36s written %.3f s (%.1f us a message, ratio %.2f), marked sent %.3f s (%.1f us, ratio %.2f); both %.1f us a message\n",
      name, i, i * 1e6 / n, i / bi, u, u * 1e6 / n, u / bu, (i + u) * 1e6 / n }'
done
