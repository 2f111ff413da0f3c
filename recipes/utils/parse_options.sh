#!/usr/bin/env bash
# Kaldi-style command-line options for recipe scripts. Declare every option as a shell
# variable with its default and a $help_message, then source this file:
#
#     stage=1              # first stage to run
#     data_dir=data        # where stage 1 writes the manifests
#     help_message="Usage: $0 [options] ..."
#     . utils/parse_options.sh
#
# `--data_dir x`, `--data-dir x` and `--data_dir=x` then all set data_dir=x.
# - Only variables that already exist can be set, so a misspelt option is an error
#   instead of a silently unused variable. Option names start with a lower-case letter,
#   so environment variables (PATH) and a script's internal variables named with a
#   leading underscore cannot be set this way.
# - A variable whose default is true or false only accepts true or false.
# - `--help` or `-h` prints $help_message and exits with status 0.
# - Parsing stops at `--` or at the first argument that does not start with `--`; the
#   remaining arguments stay in "$@" for the calling script to check.
# Values are assigned as they are (printf -v, no eval), so they may hold spaces or quotes.

__parse_options_fail() {
    echo "$0: $*" >&2
    echo "$0: run '$0 --help' to list the options and their defaults." >&2
    exit 1
}

# Sets the variables and leaves the number of arguments it used in __parse_options_used.
# Globals with a __ prefix (never valid option names) hold its state, so no local
# variable can shadow the option being assigned.
__parse_options() {
    __parse_options_used=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --)
                __parse_options_used=$((__parse_options_used + 1))
                return 0 ;;
            -h | --help)
                printf '%s\n' "${help_message:-Usage: $0 [options]}"
                exit 0 ;;
            --*=*)
                __parse_options_name=${1%%=*}
                __parse_options_value=${1#*=}
                __parse_options_step=1 ;;
            --*)
                [ $# -ge 2 ] || __parse_options_fail "option $1 needs a value, e.g. $1 VALUE"
                __parse_options_name=$1
                __parse_options_value=$2
                __parse_options_step=2 ;;
            *)
                return 0 ;;
        esac
        __parse_options_var=${__parse_options_name#--}
        __parse_options_var=${__parse_options_var//-/_}
        if ! [[ ${__parse_options_var} =~ ^[a-z][a-z0-9_]*$ ]] \
                || ! declare -p "${__parse_options_var}" > /dev/null 2>&1; then
            __parse_options_fail "unknown option ${__parse_options_name}"
        fi
        case "${!__parse_options_var}" in
            true | false)
                case "${__parse_options_value}" in
                    true | false) ;;
                    *) __parse_options_fail "option ${__parse_options_name} takes true or" \
                                            "false, not '${__parse_options_value}'" ;;
                esac ;;
        esac
        printf -v "${__parse_options_var}" '%s' "${__parse_options_value}"
        __parse_options_used=$((__parse_options_used + __parse_options_step))
        shift "${__parse_options_step}"
    done
}

__parse_options "$@"
shift "${__parse_options_used}"
unset -v __parse_options_used __parse_options_name __parse_options_value \
    __parse_options_step __parse_options_var
unset -f __parse_options __parse_options_fail
