#!/usr/bin/env python3
"""What packaging/docker/Dockerfile builds, read from the Dockerfile itself,
and its build context as .dockerignore leaves it, so packaging/check.sh can
build the image's binary without a Docker engine and cannot drift from it.

  dockerfile.py cargo-command DOCKERFILE   the `RUN cargo build` argv, one per line
  dockerfile.py binary-path DOCKERFILE     target/<profile>/sluicegate
  dockerfile.py env DOCKERFILE             the runtime stage's ENV, NAME=VALUE lines
  dockerfile.py context REPO DEST          sync the build context of REPO into DEST
"""

import os
import re
import shlex
import shutil
import subprocess
import sys


class CheckError(Exception):
    pass


def instructions(dockerfile):
    """(KEYWORD, arguments) per instruction, continuation lines joined."""
    result = []
    pending = ""
    with open(dockerfile, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            whole = (pending + line).strip()
            pending = ""
            keyword, _, arguments = whole.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    if pending:
        raise CheckError(f"{dockerfile}: ends inside a continued line")
    return result


def stages(dockerfile):
    """The instructions of each build stage, in order."""
    result = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def cargo_command(dockerfile):
    found = []
    for keyword, arguments in instructions(dockerfile):
        if keyword != "RUN":
            continue
        for part in arguments.split("&&"):
            argv = shlex.split(part)
            if argv[:2] == ["cargo", "build"]:
                found.append(argv)
    if len(found) != 1:
        raise CheckError(f"{dockerfile}: expected one `RUN cargo build`, found {len(found)}")
    argv = found[0]
    if "--locked" not in argv:
        raise CheckError(f"{dockerfile}: the cargo build must be --locked")
    return argv


def profile(argv):
    if "--profile" in argv:
        index = argv.index("--profile")
        if index + 1 < len(argv):
            return argv[index + 1]
    if "--release" in argv:
        return "release"
    raise CheckError("the cargo build names no --profile")


def binary_path(dockerfile):
    path = f"target/{profile(cargo_command(dockerfile))}/sluicegate"
    with open(dockerfile, encoding="utf-8") as handle:
        if path not in handle.read():
            raise CheckError(f"{dockerfile}: the image does not take the binary from {path}")
    return path


def runtime_env(dockerfile):
    env = {}
    for keyword, arguments in stages(dockerfile)[-1]:
        if keyword == "ENV":
            for item in shlex.split(arguments):
                name, equals, value = item.partition("=")
                if not equals:
                    raise CheckError(f"{dockerfile}: write ENV as NAME=VALUE ({item})")
                env[name] = value
    return env


class Pattern:
    """One .dockerignore line, matched as Docker's patternmatcher does:
    against the whole path, or else against the path's leading directories
    (as many as the pattern has), so `*` excludes every top-level entry and
    `!src` brings back everything under src/."""

    def __init__(self, line):
        self.exclusion = line.startswith("!")
        text = os.path.normpath(line[1:].strip() if self.exclusion else line).lstrip("/")
        self.dirs = text.split("/")
        self.regex = re.compile(self._regex(text))

    @staticmethod
    def _regex(text):
        out = ""
        index = 0
        while index < len(text):
            char = text[index]
            if text.startswith("**", index):
                out += ".*"
                index += 2
                if text.startswith("/", index):
                    out = out[:-2] + "(.*/)?"
                    index += 1
                continue
            if char == "*":
                out += "[^/]*"
            elif char == "?":
                out += "[^/]"
            elif char == "[":
                end = text.find("]", index)
                if end < 0:
                    raise CheckError(f".dockerignore: unclosed [ in {text}")
                out += "[" + text[index + 1 : end].replace("!", "^", 1) + "]"
                index = end
            elif char == "\\" and index + 1 < len(text):
                index += 1
                out += re.escape(text[index])
            else:
                out += re.escape(char)
            index += 1
        return "^" + out + "$"

    def matches(self, path):
        if self.regex.match(path):
            return True
        parents = path.split("/")[:-1]
        if parents and len(self.dirs) <= len(parents):
            return bool(self.regex.match("/".join(parents[: len(self.dirs)])))
        return False


def ignore_patterns(repo):
    path = os.path.join(repo, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [Pattern(line) for line in lines if line and not line.startswith("#")]


def context_files(repo):
    """The files `docker build REPO` would send: those of a fresh clone (what
    git tracks, plus new files it does not ignore) that .dockerignore keeps."""
    listed = subprocess.run(
        ["git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    patterns = ignore_patterns(repo)
    kept = []
    for path in sorted(set(filter(None, listed.split("\0")))):
        if not os.path.isfile(os.path.join(repo, path)):
            continue  # deleted in the work tree
        excluded = False
        for pattern in patterns:
            if pattern.matches(path):
                excluded = not pattern.exclusion
        if not excluded:
            kept.append(path)
    return kept


def sync_context(repo, dest):
    """Copies the context into dest, keeping unchanged files' mtimes, so
    cargo rebuilds only what changed; removes what left the context."""
    files = context_files(repo)
    if "Cargo.toml" not in files:
        raise CheckError("the build context has no Cargo.toml: check .dockerignore")
    wanted = set(files)
    for root, _dirs, names in os.walk(dest):
        for name in names:
            path = os.path.relpath(os.path.join(root, name), dest)
            if path not in wanted:
                os.remove(os.path.join(root, name))
    copied = 0
    for path in files:
        source = os.path.join(repo, path)
        target = os.path.join(dest, path)
        stat = os.stat(source)
        if os.path.exists(target):
            old = os.stat(target)
            if old.st_size == stat.st_size and old.st_mtime_ns == stat.st_mtime_ns:
                continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    print(f"build context: {len(files)} files ({copied} copied) in {dest}", file=sys.stderr)


def main(argv):
    if len(argv) == 3 and argv[1] == "cargo-command":
        print("\n".join(cargo_command(argv[2])))
    elif len(argv) == 3 and argv[1] == "binary-path":
        print(binary_path(argv[2]))
    elif len(argv) == 3 and argv[1] == "env":
        for name, value in runtime_env(argv[2]).items():
            print(f"{name}={value}")
    elif len(argv) == 4 and argv[1] == "context":
        sync_context(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except CheckError as error:
        print(f"dockerfile.py: {error}", file=sys.stderr)
        sys.exit(1)
