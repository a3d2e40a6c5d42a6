#!/usr/bin/env bash
# Prepares the study's two held-out corpora beside the default one (scripts/prepare-corpus.sh), each
# encoded with the default corpus's SentencePiece tokenizer (data/kjv/spm-4096.model) so that a model
# trained on the King James Bible can be validated on them:
#   data/web/web.txt, data/web/spm-4096/          the World English Bible (Debian's sword-text-web, read
#                                                  with diatheke): the same book in modern English, a shift
#                                                  of wording, not of domain
#   data/manpages/manpages.txt, .../spm-4096/      section 7 of the Linux man-pages project (Debian's
#                                                  manpages package, rendered by man at 80 columns): English
#                                                  technical documentation, a shift of domain
# The same pipeline as the default corpus: plain text, then `gqe data prepare` with a 2% validation split
# (one 16 KiB chunk in 50). Idempotent: each step is skipped when its output exists (delete it to redo).
#   scripts/prepare-study-corpora.sh [BUILD_DIR (default: build)] [DATA_DIR (default: data)]
# Needs diatheke, sword-text-web, manpages, man-db and groff-base (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-data}
gqe=${GQE:-$build/gqe}
threads=${THREADS:-2}
model=$data/kjv/spm-4096.model

[[ -x $gqe ]] || { echo "prepare-study-corpora: $gqe not found; build first or set GQE=" >&2; exit 1; }
[[ -s $model ]] || { echo "prepare-study-corpora: $model not found; run scripts/prepare-corpus.sh first" >&2; exit 1; }
for tool in diatheke man col; do
  command -v $tool >/dev/null || { echo "prepare-study-corpora: '$tool' is missing; run scripts/install-deps.sh" >&2; exit 1; }
done

# 1. The World English Bible, the 66 books of the King James canon in its order, laid out as kjv.txt is:
#    one verse per line (poetry lines joined), a blank line between chapters, no references or psalm
#    superscriptions. diatheke prints "Book C:V: text" with continuation lines, a blank line after poetry,
#    superscriptions after such a blank line, and the module's glossary after the last verse.
mkdir -p "$data/web"
if [[ ! -s $data/web/web.txt ]]; then
  [[ -n $(diatheke -b system -k modulelist 2>/dev/null | grep engWEB2015eb) ]] ||
    { echo "prepare-study-corpora: the SWORD module engWEB2015eb is missing; install sword-text-web" >&2; exit 1; }
  # Two ranges: the module's versification puts the deuterocanonical books between Malachi and Matthew.
  { diatheke -b engWEB2015eb -f plain -o h -k "Genesis 1:1-Malachi 4:6"
    diatheke -b engWEB2015eb -f plain -o h -k "Matthew 1:1-Revelation 22:21"; } | awk '
    function flush() { if (verse != "") { gsub(/[[:space:]]+/, " ", verse); sub(/ $/, "", verse); print verse; verse = "" } }
    /The following words used in the World English Bible/ { exit }
    match($0, /^[[:space:]]*([1-3] )?[A-Z][A-Za-z]*( [A-Za-z]+)* [0-9]+:[0-9]+: /) {
      flush(); closed = 0
      ref = substr($0, 1, RLENGTH - 2); sub(/^[[:space:]]+/, "", ref); chapter = ref; sub(/:[0-9]+$/, "", chapter)
      if (seen && chapter != last) print ""
      seen = 1; last = chapter; verse = substr($0, RLENGTH + 1); next
    }
    /^[[:space:]]*$/ { flush(); closed = 1; next }
    # After a blank line and before the next reference: a psalm superscription (the KJV text has none).
    closed { next }
    { verse = verse " " $0 }
    END { flush() }' > "$data/web/web.txt.tmp"
  mv "$data/web/web.txt.tmp" "$data/web/web.txt"
  echo "made $data/web/web.txt"
else
  echo "kept $data/web/web.txt"
fi

# 2. The man-pages project's section 7, one page after another (its own package's files only, so the text
#    does not depend on what else is installed), without the running header and footer lines, margins
#    and the justification's double spaces.
mkdir -p "$data/manpages"
if [[ ! -s $data/manpages/manpages.txt ]]; then
  pages=$(dpkg -L manpages 2>/dev/null | grep '/man7/.*\.7\.gz$' | LC_ALL=C sort) ||
    { echo "prepare-study-corpora: the manpages package is not installed" >&2; exit 1; }
  for f in $pages; do
    MANWIDTH=80 man -l "$f" 2>/dev/null | col -bx | sed -e '1d' -e '$d' -e 's/^ *//' -e 's/  */ /g'
    echo
  done > "$data/manpages/manpages.txt.tmp"
  mv "$data/manpages/manpages.txt.tmp" "$data/manpages/manpages.txt"
  echo "made $data/manpages/manpages.txt"
else
  echo "kept $data/manpages/manpages.txt"
fi

# 3. Shards with the default corpus's tokenizer. The WEB holds out 2% as the KJV does (its chunks fall on other
#    passages: most of them are in the KJV's training text, in the old wording); the man pages hold out 10%
#    (11 chunks across many pages: two chunks would be two pages, too few to stand for a domain).
for name in web manpages; do
  out=$data/$name/spm-4096
  val=0.02
  [[ $name == manpages ]] && val=0.1
  if [[ ! -s $out/meta.json ]]; then
    "$gqe" data prepare --input "$data/$name/$name.txt" --out "$out" --tokenizer "$model" --val-fraction "$val" \
      --threads "$threads" --force
  else
    echo "kept $out"
  fi
  counts=$(grep -o '"tokens": [0-9]*' "$out/meta.json" | grep -o '[0-9]*$' | tr '\n' ' ')
  read -r ntrain nval <<< "$counts"
  printf '  %-28s %s\n' "$name/spm-4096" "$(wc -c < "$data/$name/$name.txt") bytes of text: train $ntrain tokens, val $nval tokens"
done
