"""The Dockerfile's builder stage, replayed without Docker: what its COPY lines copy from the
build context (less what .dockerignore leaves out) must load as a Cargo workspace, or the
image build stops at "failed to load manifest for workspace member".

    image_context.py DOCKERFILE            exit 1 when the context would not load
"""

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile


def builder_copies(dockerfile):
    """(sources, destination) of each COPY of the builder stage that reads the context."""
    copies, in_builder = [], False
    for raw in open(dockerfile).read().replace("\\\n", " ").splitlines():
        line = raw.strip()
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            in_builder = len(words) >= 4 and words[-2].upper() == "AS" and words[-1] == "builder"
            continue
        if in_builder and words[0].upper() == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
                continue
            copies.append((args[:-1], args[-1]))
    return copies


def ignored_patterns(context):
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    return [line.strip().rstrip("/") for line in open(path)
            if line.strip() and not line.startswith("#")]


def is_ignored(relative, patterns):
    parts = relative.split(os.sep)
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(parts[0], p) for p in patterns)


def replay(context, copies, into):
    """Copies as Docker would into `into` (the stage's WORKDIR): a directory's contents into
    the destination, a file into it (a destination ending in / or several sources) or as it."""
    patterns = ignored_patterns(context)
    for sources, destination in copies:
        relative = destination[len("/src"):] if destination.startswith("/src") else destination
        target = os.path.normpath(os.path.join(into, relative.lstrip("/")))
        into_dir = destination.endswith("/") or destination in (".", "./") or len(sources) > 1
        for source in sources:
            source = os.path.normpath(source)
            origin = os.path.join(context, source)
            if os.path.isdir(origin):
                os.makedirs(target, exist_ok=True)
                for name in os.listdir(origin):
                    inner = os.path.normpath(os.path.join(source, name))
                    if not is_ignored(inner, patterns):
                        copy_one(context, inner, os.path.join(target, name), patterns)
            elif os.path.exists(origin) and not is_ignored(source, patterns):
                dest = os.path.join(target, os.path.basename(source)) if into_dir else target
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(origin, dest)


def copy_one(context, relative, dest, patterns):
    origin = os.path.join(context, relative)
    if os.path.isdir(origin):
        shutil.copytree(origin, dest, dirs_exist_ok=True, ignore=lambda d, names: [
            n for n in names
            if is_ignored(os.path.relpath(os.path.join(d, n), context), patterns)])
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(origin, dest)


def check(dockerfile, context="."):
    copies = builder_copies(dockerfile)
    if not copies:
        return "the Dockerfile has no builder stage that copies from the build context"
    with tempfile.TemporaryDirectory(prefix="image-context-") as into:
        replay(context, copies, into)
        manifest = os.path.join(into, "Cargo.toml")
        if not os.path.exists(manifest):
            return "the builder stage copies no Cargo.toml"
        done = subprocess.run(
            ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1",
             "--manifest-path", manifest],
            capture_output=True, text=True)
        if done.returncode != 0:
            last = [l for l in done.stderr.splitlines() if l.strip()]
            return "the builder stage's context does not load as a workspace: " + " / ".join(last[:3])
    return None


if __name__ == "__main__":
    problem = check(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ".")
    if problem:
        print(f"  FAIL {problem}")
        sys.exit(1)
    print("  the builder stage's context loads as a Cargo workspace")
