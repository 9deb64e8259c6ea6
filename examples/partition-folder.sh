#!/bin/sh
# Partition every PDF in a folder, wait for all runs, and split the completed ones into
# one file per invoice. Exit code: 0 when every run completed, otherwise retab's code
# (3 failed, 5 cancelled, 8 timed out, ...). Needs RETAB_API_KEY (or 'retab auth login').
set -eu
folder=${1:?usage: partition-folder.sh FOLDER [OUT_DIR]}
out=${2:-split}

ids=$(retab partitions create "$folder"/*.pdf --key "invoice number" --background -q)
status=0
printf '%s\n' "$ids" | retab partitions watch - --timeout 30m -q > /dev/null || status=$?

# Match each run to its file and split the completed ones.
for id in $ids; do
  name=$(retab partitions get "$id" --json --fields file.filename,status |
         python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["file"]["filename"])')
  case $name in
    "completed "*) retab partitions split "$id" --document "$folder/${name#completed }" \
                     --out-dir "$out/${name#completed }" --overwrite -q ;;
  esac
done
exit "$status"
