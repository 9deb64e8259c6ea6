_retab_completion() {
    local value
    local -a values
    mapfile -t values < <(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \
                          _RETAB_COMPLETE=complete_bash "$1")
    COMPREPLY=()
    for value in "${values[@]}"; do
        # Quoted as a word: a value is inserted, never run.
        [[ -n $value ]] && COMPREPLY+=("$(printf '%q' "$value")")
    done
    return 0
}

complete -o default -F _retab_completion retab
