"""Which files `load_dataset("imagefolder", data_dir=..., split="train")` trains on, for folder layouts.

Usage: /usr/bin/python3 make.py <datasets git dir> <fsspec git dir>   (writes expected.json next to this file)

Runs datasets' own split resolution, not a rewrite of it: the module body of src/datasets/data_files.py (and the
helpers it imports, taken by name from their files) of each version below is executed as it stands, on the real
fsspec of the version datasets resolves with (its newest allowed one; pure Python, imported from the tag). Only what
cannot matter to a local folder is stubbed (huggingface_hub, tqdm, the HTTP filesystem, packaging's version
parsing, the origin metadata used for cache hashing). Before any layout is run, datasets' own tests of this code
(tests/test_data_files.py of the same tag: every test that needs only local fixtures, each parametrized case) run
against it through a small pytest stand-in, so a stub that changed the behaviour would fail here.
"""

import ast
import contextlib
import importlib
import inspect
import itertools
import json
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

# (datasets tag, fsspec tag): 2.16.1 is diffusers 0.25.1's time (it allows fsspec <= 2023.10.0); 5.0.1 is the newest
# release in the mirror (fsspec <= 2026.6.0), what `pip install datasets` gives a user of the script today.
VERSIONS = [("2.16.1", "2023.10.0"), ("5.0.1", "2026.6.0")]
CHOSEN = "5.0.1"  # the rules DiffusersSharp follows (README.md here says why)
IMAGE_EXTENSIONS = []  # imagefolder's, of the tag being run: the files ImageFolderDataset takes for images, as imagefolder


def is_image(path):
    """folder_based_builder's _split_files_and_metadata_and_archives: the extension, or the one before it, is an image's."""
    root, ext = os.path.splitext(path)
    return ext.lower() in IMAGE_EXTENSIONS or os.path.splitext(root)[1].lower() in IMAGE_EXTENSIONS

# name → files (relative, "/"-separated); every file is created empty.
LAYOUTS = {
    "no-split-names": ["a.png", "cats/b.jpg", "cats/c.JPEG", "notes.txt"],
    "train-and-test-folders": ["train/a.png", "train/b.png", "test/c.png", "test/d.png"],
    "train-valid-test-folders-nested": ["images/train/a.png", "images/val/b.png", "images/test/c.png", "d.png"],
    "data-folder-with-split-folders": ["data/train/a.png", "data/test/b.png"],
    "deep-split-folders-and-others": ["x/y/train/a.png", "x/y/test/b.png", "x/other/c.png", "d.png"],
    "split-folders-with-separators-and-digits": ["my_train/a.png", "train-2/b.png", "train1/c.png", "dev set/d.png",
                                                 "eval.1/e.png"],
    "training-and-testing-folders": ["training/a.png", "testing/b.png"],
    "train-folder-of-train-named-files": ["train/train_0001.png", "train/train_0002.png", "train/0003.png",
                                          "test/test_0001.png"],
    "split-names-in-file-names": ["train_01.png", "train-02.png", "train.03.png", "train 04.png", "train5.png",
                                  "cat_train.jpg", "test_01.png", "my.test.png", "val_01.png", "other.png"],
    "split-name-in-file-names-in-folders": ["cats/cat_train_1.png", "cats/cat_test_1.png", "dogs/dog_train_1.png"],
    "folder-names-win-over-file-names": ["train/a.png", "test/b.png", "extra_train.png", "cats/cat_train.png"],
    "test-folder-holding-a-train-named-file": ["train/a.png", "test/train_vs_test.png"],
    "nested-split-folder-names": ["a_train/train/x.png", "train/y.png"],
    "shards": ["data/train-00000-of-00002.png", "data/train-00001-of-00002.png", "data/test-00000-of-00001.png",
               "extra.png", "train/z.png"],
    "shards-with-a-custom-split": ["data/train-00000-of-00001.png", "data/random-00000-of-00001.png"],
    "shards-without-train": ["data/test-00000-of-00001.png", "a.png"],
    "shard-with-a-bad-split-name": ["data/train-00000-of-00001.png", "data/my-cats-00000-of-00001.png"],
    "only-a-test-folder": ["test/a.png", "test/b.png"],
    "only-test-in-a-file-name": ["a.png", "b_test.png"],
    "a-text-file-names-a-split": ["a.png", "b.png", "results_test.txt"],
    "keyword-lookalikes-are-not-split-names": ["contest.png", "trainer/a.png", "pretrained/b.png", "devices/c.png",
                                              "evaluate/d.png", "Train/e.png", "TEST.png", "latest.png",
                                              "validationset/f.png", "retrain_x.png"],
    "hidden-and-special-folders-name-no-split": ["a.png", ".ipynb_checkpoints/test_a.png", "__MACOSX/test/b.png",
                                                 ".test.png", "sub/__pycache__/train/c.png"],
    "datasets-ignored-files-name-no-split": ["a.png", "train/README.md", "test/config.json"],
    "an-eval-file": ["a.png", "b.png", "run.eval"],
}


def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True).stdout


def show(git_dir, tag, path):
    return git(git_dir, "show", f"{tag}:{path}").decode()


def import_fsspec(fsspec_git, tag, root):
    """Writes fsspec's Python files of `tag` under root and imports that fsspec (any other one is dropped)."""
    for name in git(fsspec_git, "ls-tree", "-r", "--name-only", tag, "fsspec").decode().splitlines():
        if name.endswith(".py") and "/tests/" not in name:
            target = Path(root, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(git(fsspec_git, "show", f"{tag}:{name}"))
    version_file = Path(root, "fsspec/_version.py")
    if not version_file.exists() or "def get_versions" in version_file.read_text():
        version_file.write_text(f"__version__ = version = {tag!r}\ndef get_versions():\n    return {{'version': {tag!r}}}\n")
    for mod in [m for m in sys.modules if m == "fsspec" or m.startswith("fsspec.")]:
        del sys.modules[mod]
    sys.path.insert(0, root)
    fsspec = importlib.import_module("fsspec")
    sys.path.remove(root)
    assert fsspec.__version__ == tag, fsspec.__version__
    return fsspec


def exec_body(source, ns, only=None):
    """Executes a module's top-level statements but its imports (or only the defs/assignments named in `only`)."""
    tree = ast.parse(source)
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if only is not None:
            names = {node.name} if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else {
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
            if not names & only:
                continue
        keep.append(node)
    exec(compile(ast.Module(body=keep, type_ignores=[]), "<datasets>", "exec"), ns)
    return ns


class Version(tuple):
    """packaging.version.parse for the plain release numbers data_files.py compares."""

    def __new__(cls, text):
        return super().__new__(cls, tuple(int(x) for x in re.match(r"[0-9.]+", text).group().strip(".").split(".")))


def quiet(*args, **kwargs):
    pass


def datasets_namespace(ds_git, tag, fsspec):
    """data_files.py of `tag`, executed with its imports bound to the real fsspec, its own helpers and stubs."""
    stub = types.SimpleNamespace
    config = stub(FSSPEC_VERSION=Version(fsspec.__version__), HF_HUB_VERSION=Version("0.20.3"),
                  HF_ENDPOINT="https://huggingface.co")
    helpers = {"os": os, "posixpath": posixpath, "re": re, "Path": Path, "config": config, "fsspec": fsspec,
               "urlparse": __import__("urllib.parse").parse.urlparse, "Optional": object, "Any": object,
               "Union": object, "Tuple": object, "Dict": object, "Callable": object, "List": object,
               "DownloadConfig": object, "xPath": object}
    for typ in ("Optional", "Any", "Union", "Tuple", "Dict", "Callable", "List"):
        helpers[typ] = __import__("typing").__dict__[typ]
    names = {"xjoin", "xbasename", "is_local_path", "is_relative_path", "_prepare_path_and_storage_options",
             "_prepare_single_hop_path_and_storage_options", "glob_pattern_to_regex", "string_to_dict",
             "_split_re", "filename_prefix_for_split", "filename_prefix_for_name", "camelcase_to_snakecase",
             "_uppercase_uppercase_re", "_lowercase_uppercase_re"}
    helper_files = ["src/datasets/utils/file_utils.py", "src/datasets/utils/py_utils.py", "src/datasets/naming.py"]
    if tag.startswith("2."):
        helper_files.append("src/datasets/download/streaming_download_manager.py")
    for path in helper_files:
        exec_body(show(ds_git, tag, path), helpers, only=names)

    class Split:
        TRAIN, VALIDATION, TEST = "train", "validation", "test"

    class HfFileSystem:
        pass

    ns = {"os": os, "re": re, "Path": Path, "PurePath": __import__("pathlib").PurePath,
          "partial": __import__("functools").partial, "has_magic": __import__("glob").has_magic,
          "huggingface_hub": stub(hf_api=stub(DatasetInfo=object)), "HfFileSystem": HfFileSystem,
          "HTTPFileSystem": type("HTTPFileSystem", (), {}),
          "version": stub(parse=Version), "thread_map": None, "config": config, "DownloadConfig": object,
          "Split": Split, "logging": stub(get_logger=lambda name: stub(info=quiet, debug=quiet, warning=quiet)),
          "hf_tqdm": None, "SingleOriginMetadata": object}
    if hasattr(fsspec, "core") and hasattr(fsspec.core, "url_to_fs"):
        ns["url_to_fs"] = fsspec.core.url_to_fs
    ns["get_fs_token_paths"] = fsspec.get_fs_token_paths
    for typ in ("Callable", "Dict", "List", "Optional", "Set", "Tuple", "Union"):
        ns[typ] = __import__("typing").__dict__[typ]
    ns.update({k: helpers[k] for k in names if k in helpers})
    exec_body(show(ds_git, tag, "src/datasets/data_files.py"), ns)
    ns["_get_origin_metadata"] = lambda data_files, **kwargs: [() for _ in data_files]  # cache hashing only
    ns["_naming"] = helpers
    return ns


# --- a stand-in for the part of pytest that tests/test_data_files.py uses ---------------------------------------

class _Mark:
    def parametrize(self, names, values):
        def deco(f):
            f.__dict__.setdefault("_params", []).insert(0, ([n.strip() for n in names.split(",")], values))
            return f
        return deco

    def skipif(self, condition, reason=""):
        return lambda f: f


class _Pytest:
    mark = _Mark()

    @staticmethod
    def fixture(f=None, **kwargs):
        def deco(g):
            g._fixture = True
            return g
        return deco(f) if f is not None else deco

    @staticmethod
    @contextlib.contextmanager
    def raises(exc):
        try:
            yield
        except exc:
            return
        raise AssertionError(f"did not raise {exc.__name__}")


def run_datasets_tests(ds_git, tag, ns, fsspec):
    """Runs every test of tests/test_data_files.py whose fixtures are local (each parametrized case)."""
    tests = dict(ns)
    tests.update({"pytest": _Pytest, "fsspec": fsspec, "copy": __import__("copy"), "patch": None,
                  "AbstractFileSystem": fsspec.spec.AbstractFileSystem, "Hasher": None,
                  "_fsspec_registry": importlib.import_module("fsspec.registry")._registry})
    exec_body(show(ds_git, tag, "tests/test_data_files.py"), tests)
    local = {"tmp_path", "tmp_path_factory", "complex_data_dir", "pattern_results"}
    ran, skipped = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        counter = itertools.count()

        def fresh_dir():
            d = Path(tmp, f"t{next(counter)}")
            d.mkdir()
            return d

        def resolve(name, cache):
            if name not in cache:
                if name == "tmp_path":
                    cache[name] = fresh_dir()
                elif name == "tmp_path_factory":
                    cache[name] = types.SimpleNamespace(mktemp=lambda n: fresh_dir())
                else:
                    f = tests[name]
                    cache[name] = f(**{p: resolve(p, cache) for p in inspect.signature(f).parameters})
            return cache[name]

        for name, f in list(tests.items()):
            if not (name.startswith("test_") and inspect.isfunction(f)):
                continue
            params = f.__dict__.get("_params", [])
            fixtures = [p for p in inspect.signature(f).parameters if all(p not in names for names, _ in params)]
            if not set(fixtures) <= local:
                skipped.append(name)
                continue
            combos = itertools.product(*[[dict(zip(names, v if len(names) > 1 else (v,))) for v in values]
                                         for names, values in params])
            for combo in combos:
                args = {k: v for d in combo for k, v in d.items()}
                cache = {}
                args.update({p: resolve(p, cache) for p in fixtures})
                f(**args)
                ran[name] = ran.get(name, 0) + 1
    return ran, skipped


def run_layout(ns, files):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp, "data")
        for rel in files:
            Path(base, rel).parent.mkdir(parents=True, exist_ok=True)
            Path(base, rel).touch()
        base_path = base.resolve().as_posix()  # as PackagedDatasetModuleFactory.get_module
        try:
            patterns = ns["get_data_patterns"](base_path)
            splits = [str(s) for s in patterns]
            for split in splits:  # the builder's file names (2.16.1 checks the split names only here)
                ns["_naming"]["filename_prefix_for_split"]("imagefolder", split)
        except ValueError as e:
            return {"error": str(e)}
        data_files = ns["DataFilesDict"].from_patterns(patterns, base_path=base_path)
        if "train" not in data_files:  # arrow_reader's _rel_to_abs_instr, for split="train"
            return {"splits": splits, "error": f'Unknown split "train". Should be one of {splits}.'}
        train = [Path(p).relative_to(base_path).as_posix() for p in data_files["train"]]
        return {"splits": splits, "train_files": train,
                "train_images": [p for p in train if is_image(p)]}


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # 5.0.1's bad-split-name message prints a set: a fixed order
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ds_git, fsspec_git = sys.argv[1:3]
    out = {"datasets_versions": {}, "chosen": CHOSEN, "layouts": []}
    results = {}
    for tag, fsspec_tag in VERSIONS:
        with tempfile.TemporaryDirectory() as root:
            fsspec = import_fsspec(fsspec_git, fsspec_tag, root)
            ns = datasets_namespace(ds_git, tag, fsspec)
            ran, skipped = run_datasets_tests(ds_git, tag, ns, fsspec)
            ext_ns = exec_body(show(ds_git, tag, "src/datasets/packaged_modules/imagefolder/imagefolder.py"), {},
                               only={"IMAGE_EXTENSIONS"})
            IMAGE_EXTENSIONS[:] = ext_ns["IMAGE_EXTENSIONS"]
            results[tag] = {name: run_layout(ns, files) for name, files in LAYOUTS.items()}
        print(f"datasets {tag} on fsspec {fsspec_tag}: {sum(ran.values())} cases of tests/test_data_files.py passed: "
              + ", ".join(f"{name} {n}" for name, n in ran.items())
              + f"; not run (remote or archive fixtures): {', '.join(skipped)}")
        out["datasets_versions"][tag] = {"fsspec": fsspec_tag, "datasets_test_cases_passed": ran}
    for name, files in LAYOUTS.items():
        entry = {"name": name, "files": files}
        entry.update({tag: results[tag][name] for tag, _ in VERSIONS})
        out["layouts"].append(entry)
        if len({json.dumps(results[tag][name]) for tag, _ in VERSIONS}) > 1:
            print(f"differs: {name}: " + "; ".join(f"{tag}: {results[tag][name]}" for tag, _ in VERSIONS))
    Path(__file__).with_name("expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
