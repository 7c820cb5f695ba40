# bash completion for twoway. The words come from the program itself (`twoway --list-flags`,
# `twoway ca --list-flags`, `twoway COMMAND --list-flags`), so they match the installed
# version. Installed as /usr/share/bash-completion/completions/twoway.

_twoway()
{
    local cur prev words cword
    _init_completion || return

    local bin=${words[0]} cmd=() i
    # The command words typed so far: "gateway", or "ca issue".
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -*) break ;;
            *) cmd+=("${words[i]}") ;;
        esac
        [[ ${words[1]} == ca && ${#cmd[@]} -eq 2 ]] && break
        [[ ${words[1]} != ca && ${#cmd[@]} -eq 1 ]] && break
    done

    case $prev in
        --config | --check | --cert | --key | --ca | --client-ca | --crl | --passphrase-file | \
            --p12-pass-file | --token-file | --access-log | --chain | --out | --csr | \
            --backend-cert | --backend-key | --backend-ca | --ticket-key-file)
            _filedir
            return
            ;;
        --dir)
            _filedir -d
            return
            ;;
        --user)
            COMPREPLY=($(compgen -u -- "$cur"))
            return
            ;;
    esac

    if [[ ${#cmd[@]} -eq 0 ]]; then
        COMPREPLY=($(compgen -W "$("$bin" --list-flags 2>/dev/null) --version --help" -- "$cur"))
    elif [[ ${cmd[0]} == ca && ${#cmd[@]} -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$("$bin" ca --list-flags 2>/dev/null)" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$bin" "${cmd[@]}" --list-flags 2>/dev/null)" -- "$cur"))
    else
        _filedir
    fi
} &&
    complete -F _twoway twoway

# ex: filetype=sh
