# zsh -f zsh_complete.zsh FPATH_DIR LINE...: for each LINE, what zsh's completion
# system offers when TAB is pressed at its end, as "LINE\tWORD" lines.  An
# interactive zsh on a pseudo-terminal (zsh/zpty) loads compinit with
# FPATH_DIR first in $fpath; compadd is wrapped to print what it adds.
zmodload zsh/zpty || exit 2
local dir=$1; shift
zpty z zsh -f -i
zpty -w z "PROMPT= ; fpath=(${(q)dir} \$fpath); autoload -U compinit; compinit -u -D"
# the markers are split in the source so that the terminal's echo of these lines never matches
zpty -w z 'compadd() { builtin compadd -O __hits "$@"; local h; for h in $__hits; do print -r -- "<""hit>$h"; done; builtin compadd "$@"; }'
# comppostfuncs is emptied after each completion: a widget sets it every time
zpty -w z '_cap_done() { print -r -- "<""done>"; }; _cap() { comppostfuncs=(_cap_done); zle complete-word; }'
zpty -w z 'zle -N _cap; bindkey "^I" _cap'
local line out
for line in "$@"; do
  zpty -n -w z "$line"$'\t'
  while zpty -r z out; do
    [[ $out == *'<done>'* ]] && break
    [[ $out == *'<hit>'* ]] && print -r -- "$line"$'\t'"${${out#*<hit>}%%$'\r'*}"
  done
  zpty -n -w z $'\x15'   # ^U: an empty line for the next one
done
zpty -d z
