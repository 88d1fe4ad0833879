# bash completion for cryophile-backup, cryophile-restore, cryophile-freeze
# and cryophile-thaw. Installed as
# /usr/share/bash-completion/completions/cryophile-backup, with the other
# three names as symlinks to it (bash-completion loads a file by the name of
# the command being completed).

# _cryophile_vaults prints the [[vault]] ids of the configuration the
# command would read: --config on the line, $CRYOPHILE_CONFIG, the user's,
# the system's.
_cryophile_vaults() {
	local cfg="" i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		[[ ${COMP_WORDS[i]} == --config ]] && cfg=${COMP_WORDS[i + 1]}
	done
	for f in "$cfg" "$CRYOPHILE_CONFIG" "$HOME/.config/cryophile/cryophile.toml" /etc/cryophile/cryophile.toml; do
		if [[ -n $f && -r $f ]]; then
			sed -n 's/^[[:space:]]*id[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$f" 2>/dev/null
			return
		fi
	done
}

_cryophile() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	local cmd=${words[0]##*/}
	local common="--config --spool --verbose -v --quiet -q --help -h --version"
	local opts i

	# cryophile-backup --stdin-from-command -- CMD ARGS...: complete CMD's line.
	if [[ $cmd == cryophile-backup ]]; then
		for ((i = 1; i < cword; i++)); do
			if [[ ${words[i]} == -- ]]; then
				if declare -F _command_offset >/dev/null; then
					_command_offset $((i + 1))
				else
					mapfile -t COMPREPLY < <(compgen -c -- "$cur")
				fi
				return
			fi
		done
	fi

	case $prev in
	--config | --recipient | -r | --input | -i | --key | -k | --output | -o)
		if declare -F _filedir >/dev/null; then _filedir; else mapfile -t COMPREPLY < <(compgen -f -- "$cur"); fi
		return
		;;
	--spool | --from)
		if declare -F _filedir >/dev/null; then _filedir -d; else mapfile -t COMPREPLY < <(compgen -d -- "$cur"); fi
		return
		;;
	--vault)
		mapfile -t COMPREPLY < <(compgen -W "$(_cryophile_vaults)" -- "$cur")
		return
		;;
	--compression)
		mapfile -t COMPREPLY < <(compgen -W "zstd lz4 none" -- "$cur")
		return
		;;
	--tier)
		mapfile -t COMPREPLY < <(compgen -W "bulk standard expedited" -- "$cur")
		return
		;;
	--metrics-textfile)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	--prefix | --timestamp | --ulid | --size | --label | --spool-max | --pass-fd | --before | --days | --concurrency)
		return # a value nobody can guess
		;;
	esac

	case $cmd in
	cryophile-backup)
		opts="--vault --prefix --timestamp --ulid --recipient -r --compression --aead --size --label
			--input -i --stdin-from-command --spool-max --progress $common"
		;;
	cryophile-restore)
		opts="--vault --prefix --ulid --latest --before --tier --days --cancel --from --key -k
			--pass-fd --output -o --keep --progress $common"
		;;
	cryophile-freeze)
		opts="--once --concurrency --metrics-textfile --status --json $common"
		;;
	cryophile-thaw)
		local sub=""
		for ((i = 1; i < cword; i++)); do
			case ${words[i]} in
			list | estimate) sub=${words[i]} ;;
			esac
		done
		case $sub in
		list) opts="--vault --prefix --json $common" ;;
		estimate) opts="--vault --prefix --ulid --latest --tier --json $common" ;;
		*)
			opts="--once --concurrency --metrics-textfile --status --json $common"
			[[ $cur != -* ]] && opts="list estimate"
			;;
		esac
		;;
	*) return ;;
	esac
	mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}

complete -F _cryophile cryophile-backup cryophile-restore cryophile-freeze cryophile-thaw
