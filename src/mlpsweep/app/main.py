"""One clear line for bad input, instead of Hydra's multi-line error blocks.

run.py runs Hydra with HYDRA_FULL_ERROR=1 so that its exceptions reach us, then prints
one line naming what is wrong and how to fix it, and exits 2. A user who sets
HYDRA_FULL_ERROR=1 gets the full traceback, as Hydra documents (user_wants_tracebacks:
the variable we set ourselves does not count).
"""

import difflib
import gc
import io
import logging
import os
import re
import signal
import sys

from mlpsweep.app import single
from mlpsweep.records.layout import plain_name

KNOBS_HINT = "`python run.py --help` lists the knobs"
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
    if isinstance(exc, OSError):
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


_user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"


def user_wants_tracebacks():
    return _user_full_error


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


def _terminate(signum, frame):
    raise Terminated(signum)


INSPECTION_FLAGS = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}
INSPECTION_FLAGS |= {"--shell-completion", "-sc"}


def quiet_stdout():
    """Point stdout at /dev/null, so the interpreter's last flush to a closed pipe is
    not one more error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class _WithoutHydrasJobLine:
    """sys.stderr without the line Hydra writes before re-raising a single run's error
    ("Error executing job with overrides: [...]", hydra.core.utils.JobReturn): run_main
    says what failed in its own one line, and the reader should get that line alone."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return len(text) if text.startswith(self.PREFIX) else self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def reopen_closed_streams():
    """A standard stream the caller closed (`>&-`): Python leaves sys.stdout None, which
    libraries call (loky flushes it before it starts a worker), and the next file opened
    would take its descriptor (a record written where stdout was). /dev/null takes it."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)  # inheritable
                os.close(null)
            else:  # os.open's descriptors are closed at exec: a worker would lose it
                os.set_inheritable(fd, True)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - for the process


def run_main(main):
    """Call Hydra's main; turn any error it raises into one line and exit status 2 (bad
    input), or 1 for a JobError. Ctrl-C and SIGTERM stop the sweep the same way: no job
    is started, finished runs are kept, workers are shut down; exit 130 / 143. For
    run.py only: the process is expected to exit after it."""
    reopen_closed_streams()
    full = user_wants_tracebacks()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    dry = any(a.lower() in ("dry_run=true", "dry_run=1") for a in sys.argv[1:])
    if dry or INSPECTION_FLAGS & set(sys.argv[1:]):  # show or list: create no result folder
        from mlpsweep.app import resolvers

        resolvers.inspecting = True
    # Hydra prints (--info in any spelling, a sweep's job lines) through logging, whose
    # handler reports a reader gone away (`| head -1`) as one traceback per record; the
    # pipe's end is not an error, and a failed log line never changes what a run does
    logging.raiseExceptions = False
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)  # a closed terminal: as SIGTERM, not silence
    if not full and sys.stderr is not None:
        sys.stderr = _WithoutHydrasJobLine(sys.stderr)
    try:
        main()
    except BadInput as e:
        print(e.code, file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as e:
        what = "interrupted"
        if isinstance(e, Terminated):
            what = "hung up" if e.signum == signal.SIGHUP else "terminated"
        folder = single.folder_in_training()
        multirun = {"-m", "--multirun", "hydra.mode=MULTIRUN"} & set(sys.argv[1:])
        if folder is not None or not multirun:  # a single run (maybe loading its data yet)
            if folder is not None:  # no sweep to resume, no empty folder left
                single.drop_if_empty(folder)
            print(f"mlpsweep: {what}: the run did not finish; nothing was kept", file=sys.stderr)
        else:
            print(
                f"mlpsweep: {what}: finished runs kept; rerun the same command with "
                "resume=true to finish the sweep",
                file=sys.stderr,
            )
        raise SystemExit(128 + e.signum if isinstance(e, Terminated) else 130) from None
    except BrokenPipeError:  # `python run.py --help | head`: the reader has what it wanted
        quiet_stdout()
        raise SystemExit(0) from None
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: see HYDRA_FULL_ERROR
        if isinstance(exc.__context__, BrokenPipeError):
            quiet_stdout()
            raise SystemExit(0) from None
        if full:
            raise
        if isinstance(exc, JobError):
            print(f"mlpsweep: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"mlpsweep: {one_line(exc)} (HYDRA_FULL_ERROR=1 for a traceback)", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        # run.py exits next: the collector's passes at exit would walk the millions of
        # objects of pandas, matplotlib and the report's data for nothing.
        gc.freeze()
