# bash completion for stormctl
_stormctl() {
  local cur prev words cword
  _init_completion || return
  local commands="call accounts status login logout token watch metrics top proxy-ca help"
  local command="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --socket) ((i++)) ;;
      -*) ;;
      *) command=${words[i]}; break ;;
    esac
  done
  case $prev in
    --socket|--params) _filedir; return ;;
    --output)
      case $command in
        call) COMPREPLY=($(compgen -W "json yaml table" -- "$cur")) ;;
        watch) COMPREPLY=($(compgen -W "text json" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")) ;;
      esac
      return ;;
    --account|login|logout|token)
      local accounts
      accounts=$(stormctl accounts --output json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p')
      COMPREPLY=($(compgen -W "$accounts" -- "$cur"))
      return ;;
  esac
  if [[ -z $command ]]; then
    COMPREPLY=($(compgen -W "$commands --socket --help --version" -- "$cur"))
    return
  fi
  case $command in
    call) COMPREPLY=($(compgen -W "--account --timeout --output --params --all-pages --fresh --help" -- "$cur")) ;;
    accounts|status) COMPREPLY=($(compgen -W "--output --help" -- "$cur")) ;;
    login) COMPREPLY=($(compgen -W "--passcode-stdin --help" -- "$cur")) ;;
    watch) COMPREPLY=($(compgen -W "--count --output --help" -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
  esac
}
complete -F _stormctl stormctl
