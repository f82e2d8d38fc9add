#!/usr/bin/env bash
# Back up the survey database into one file (pg_dump's custom format).
#
#   scripts/backup.sh [DATABASE] FILE
#
# DATABASE is a URL (postgres://user@host:5432/name, as in DATABASE_URL), a connection
# string ("host=db1 dbname=smartsurvey user=survey") or a database name (PGHOST, PGUSER...
# apply); without it, $DATABASE_URL is used. Passwords come from ~/.pgpass or PGPASSWORD:
# the script never waits for one to be typed.
#
# The dump is written beside FILE and renamed into place only once it is complete and reads
# back, so FILE is never half a backup. Restore it with scripts/restore.sh.
set -euo pipefail

usage() {
  echo "usage: $0 [DATABASE_URL] FILE" >&2
  exit 2
}

case $# in
  1) database=${DATABASE_URL:?"DATABASE_URL is not set: give the database before FILE"}
     file=$1 ;;
  2) database=$1
     file=$2 ;;
  *) usage ;;
esac
if [[ $file == -* ]]; then
  usage
fi

partial="$file.partial.$$"
trap 'rm -f "$partial"' EXIT

pg_dump --no-password --format=custom --dbname="$database" --file="$partial"
pg_restore --list "$partial" >/dev/null
mv "$partial" "$file"
trap - EXIT
echo "backup written to $file ($(du -h "$file" | cut -f1))"
