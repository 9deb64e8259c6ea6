#compdef retab

_retab_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _RETAB_COMPLETE=complete_zsh retab)
}

compdef _retab_completion retab
