#compdef retab

_retab_completion() {
  local -a values
  values=("${(@f)$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _RETAB_COMPLETE=complete_zsh retab)}")
  values=(${values:#})
  if (( ${#values} )); then
    # value:description pairs; _describe inserts each value quoted.
    _describe 'retab' values
  else
    _files
  fi
}

compdef _retab_completion retab
