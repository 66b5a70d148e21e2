"""Errors said in one line: the error types (BadInput, exit status 2; JobError, 1;
Terminated, a signal) and the one line that names what is wrong in a config,
composition or filesystem error, and how to fix it (one_line).

run.py's main (app.main.run_main) says them; a user who sets HYDRA_FULL_ERROR=1 gets
the full traceback, as Hydra documents (user_wants_tracebacks).
"""

import difflib
import os
import re
import signal
import sys

from mlpsweep.records.layout import plain_name

KNOBS_HINT = "`python run.py --help` lists the knobs"
TRACEBACK_HINT = "(HYDRA_FULL_ERROR=1 for a traceback)"  # after a line that hides one
PLUGINS = {  # config group -> option -> the package that provides it
    "hydra/launcher": {
        "submitit_slurm": "hydra-submitit-launcher",
        "submitit_local": "hydra-submitit-launcher",
        "joblib": "hydra-joblib-launcher",
        "ray": "hydra-ray-launcher",
        "rq": "hydra-rq-launcher",
    },
    "hydra/sweeper": {
        "optuna": "hydra-optuna-sweeper",
        "ax": "hydra-ax-sweeper",
        "nevergrad": "hydra-nevergrad-sweeper",
    },
}
EXTRAS = {"hydra-submitit-launcher": "slurm", "hydra-optuna-sweeper": "tune"}


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def one_line(exc):
    """A one-line description of a config, composition or filesystem error."""
    text, cause = str(exc), exc.__cause__
    params = sweeper_params_line(text + "\n" + str(cause or ""))
    if params:
        return params
    other = re.search(r"Key '(\w+)' not in '(\w+?)SweeperConf'", text + "\n" + str(cause or ""))
    if other:  # a sweep file or an override for another sweeper than the one chosen
        key, sweeper = other.group(1), other.group(2).lower()
        where = re.match(r"In '([^']+)'", text)
        owner = next((name for name, keys in SWEEPER_KEYS.items() if key in keys), None)
        return (
            f"hydra.sweeper.{key}: hydra/sweeper={sweeper} has no such setting"
            + (f" (set by {where.group(1)})" if where else "")
            + (
                f"; it is hydra/sweeper={owner}'s: " + SWEEPER_FIX[owner]
                if owner and owner != sweeper
                else f"; {KNOBS_HINT}"
            )
        )
    unknown = re.search(
        r"Key '([^']+)' (?:not in '\w+'|is not in struct)", text + "\n" + str(cause or "")
    )
    if unknown:
        return f"unknown key '{unknown.group(1)}'{suggest(unknown.group(1))}; {KNOBS_HINT}"
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing:
        group, option = missing.groups()
        package = PLUGINS.get(group, {}).get(option)
        if package:
            return f"{group}={option} needs Hydra's plugin {package}: pip install {package}" + (
                f' (or pip install -e ".[{EXTRAS[package]}]")' if package in EXTRAS else ""
            )
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], re.M)
        return f"{group}={option}: no such {group} (available: {', '.join(options)})"
    resolving = re.match(r"\w+ raised while resolving interpolation: (.*)", text)
    if resolving:  # a resolver's own message (ours say what is wrong and how to fix it)
        return resolving.group(1).strip()
    # Hydra 1.4 puts "Error when parsing index: ..." on a line before 1.3's message.
    lexer = re.search(r"^LexerNoViableAltException: (\S+?)=(.*)", text, re.M)
    if lexer:
        key, value = lexer.groups()
        if key == "sweep_name":  # quoted, it would be refused as no folder name
            plain = plain_name(value)
            return (
                f"sweep_name={value}: a sweep name must be a plain folder name (letters, "
                "digits, . _ -)" + (f", e.g. sweep_name={plain}" if plain else "")
            )
        return (
            f"{key}={value}: Hydra's override grammar takes such characters only quoted, "
            f"e.g. '{key}=\"{value}\"'"
        )
    if "sweeper.zip" in text and "is not a ListConfig" in text + str(cause or ""):
        return "hydra.sweeper.zip: must be a list of lists of swept keys, e.g. [[batch_size,lr]]"
    parsing = re.search(r"^Error parsing override '([^']*)'", text, re.M)
    if parsing and "=" not in parsing.group(1):
        return (
            f"'{parsing.group(1)}' is not key=value: a value with spaces must be quoted, "
            "e.g. 'sweep_name=my study' (no spaces in names: sweep_name=my_study)"
        )
    if text.startswith("Error in call to target") and cause is not None:
        return first_line(cause)  # a plugin's own message (the launcher's checks)
    merging = re.match(r"Error merging override (\S+)", text)
    if merging and cause is not None:
        return f"{merging.group(1)}: {first_line(cause)}"
    if isinstance(exc, OSError) and exc.errno is not None:  # (Hydra's missing config is
        # an IOError with no errno: its own message says what is missing)
        where = f" {exc.filename}" if exc.filename else ""
        fix = "; free space, then rerun" if exc.errno in (28, 122) else ""  # ENOSPC, EDQUOT
        return f"cannot write{where}: {exc.strerror or type(exc).__name__}{fix}"
    line = first_line(exc)
    if cause is not None and first_line(cause) not in line:
        line += f": {first_line(cause)}"
    return line


# Settings only one sweeper has: where a sweep file (or override) sets one for another.
SWEEPER_KEYS = {
    "optuna": {"sampler", "direction", "storage", "study_name", "n_trials", "n_jobs"}
    | {"max_failure_rate", "search_space", "custom_search_space"},
    "mlpsweep": {"zip", "planner", "recover"},
}
SWEEPER_FIX = {
    "optuna": "run with hydra/sweeper=optuna (a study for it, like sweeps/lr_tune.yaml, "
    "chooses it itself when the command line names no hydra/sweeper)",
    "mlpsweep": "leave hydra/sweeper out (mlpsweep's own is the default)",
}
SWEEPER_PARAMS = re.compile(r"\+{0,2}hydra\.sweeper\.params(?:\.(\w+))?=(.*)", re.S)


def sweeper_params_line(text):
    """hydra.sweeper.params set on the command line (a dict, or one of its keys): Hydra
    merges that into the sweepers' default params, None (an OmegaConf error, whatever the
    dict holds), or into a sweep file's, closed to new keys. The same search is each
    knob's own override: that line, or None if no such argument is behind `text`."""
    args = [m for m in map(SWEEPER_PARAMS.fullmatch, sys.argv[1:]) if m]
    if not args or not (
        "hydra.sweeper.params" in text or "Unexpected type for root: NoneType" in text
    ):
        return None
    knobs = []
    for match in args:
        key, value = match.groups()
        if key:
            knobs.append(f"{key}={unquote(value)}")
        elif value.strip().startswith("{") and value.strip().endswith("}"):
            items = top_level_split(value.strip()[1:-1])
            knobs += [f"{k.strip()}={unquote(v)}" for k, _, v in (i.partition(":") for i in items)]
    arg = args[0].group(0)
    return (
        f"{arg}: Hydra cannot merge into hydra.sweeper.params from the command line (none "
        "by default, and a sweep file's takes no new keys): give each searched knob as an "
        "override of its own, "
        + (" ".join(knobs) if knobs else "e.g. 'lr=tag(log,interval(0.001,1))'")
    )


def unquote(value):
    value = value.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value


def top_level_split(text, sep=","):
    """`text` split at each `sep` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p for p in [*parts, text[start:]] if p.strip()]


def suggest(key):
    from dataclasses import fields

    from mlpsweep.app.schema import HarnessConfig
    from mlpsweep.core import TrainConfig

    names = [f.name for f in (*fields(TrainConfig), *fields(HarnessConfig))]
    close = difflib.get_close_matches(key.split(".")[0], names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# run_main sets HYDRA_FULL_ERROR=1 itself, so that Hydra's exceptions reach it; it says
# so in this variable beside it (a worker process inherits both), so that only the
# user's own HYDRA_FULL_ERROR=1 asks for tracebacks.
SET_BY_RUN_MAIN = "MLPSWEEP_HYDRA_FULL_ERROR_SET"


def user_wants_tracebacks() -> bool:
    """The user set HYDRA_FULL_ERROR=1 (the environment read now, where it is asked)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" and SET_BY_RUN_MAIN not in os.environ


class BadInput(SystemExit):
    """Bad input, found before any job starts: one line, exit status 2 (run_main says
    the line). A SystemExit, so that Hydra lets it through its sweeper and callbacks;
    its code is the line, so that even where no run_main catches it the interpreter
    says it (with status 1) rather than exiting in silence."""

    def __init__(self, message):
        super().__init__(f"mlpsweep: {message}")
        self.message = message


class JobError(RuntimeError):
    """A job could not do its work (not bad input): one line, exit status 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM's scancel and time limit, systemd, kill) or SIGHUP (the terminal
    closed, an ssh session dropped): stopped as Ctrl-C is."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum
