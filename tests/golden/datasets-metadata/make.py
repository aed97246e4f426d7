"""Which images `load_dataset("imagefolder", data_dir=..., split="train")` trains on when the folder holds metadata files
(metadata.csv / metadata.jsonl), or the error it stops with, for small folder layouts; datasets 5.0.1.

Usage: /usr/bin/python3 make.py <datasets git dir> <fsspec git dir>   (writes expected.json next to this file; needs
Debian's python3-pandas)

Runs datasets' own code: the splits and their data files come from data_files.py on the real fsspec, exactly as
../datasets-splits/make.py runs it (imported from there, with datasets' tests of that code run first), and the
examples from the module body of packaged_modules/folder_based_builder/folder_based_builder.py and imagefolder.py of
the tag (`_split_generators` for every split, then `_generate_examples` for every split, as `download_and_prepare`
prepares them all before `split="train"` is taken), with `_visit` and `_visit_with_path` from features/features.py.
What is stubbed: the download manager (local files are their own downloads), the Features/Value/List/Image classes
(plain containers with equality), and pyarrow's readers: a CSV goes through the real `pandas.read_csv` (pandas 1.5.3)
and `pa.Table.from_pandas` is replaced by a table whose column types follow pyarrow's rules for the dtypes pandas gives
(object of str: string, int64, float64 as double with NaN as null, bool; a mix: ArrowTypeError); a JSON Lines file is
parsed line by line with the same type rules (a column changing type: ArrowInvalid). The Parquet reader is not run.
Then each train example's image path is checked to exist (PIL.Image.open would fail on it when the batch is read).
"""

import dataclasses
import importlib.util
import io
import itertools
import json
import math
import os
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
TAG, FSSPEC_TAG = "5.0.1", "2026.6.0"

# name -> {relative path: content}; "IMG" is an (empty) image file
CSV = "file_name,text\n"


def two_metadata_files(column, a, b, jsonl=False):
    """a/x.png and b/y.png in one split, each named by a metadata file of its folder whose `column` holds a, b"""
    def metadata(name, value):
        return f'{{"file_name": "{name}", "{column}": {value}}}\n' if jsonl else f"file_name,{column}\n{name},{value}\n"
    ext = "jsonl" if jsonl else "csv"
    return {"a/x.png": "IMG", f"a/metadata.{ext}": metadata("x.png", a), "b/y.png": "IMG", f"b/metadata.{ext}": metadata("y.png", b)}
LAYOUTS = {
    "csv-every-row-an-image": {"a.png": "IMG", "b.jpg": "IMG", "c.png": "IMG", "metadata.csv": CSV + "a.png,x\nb.jpg,y\nc.png,z\n"},
    "images-without-a-row-are-left-out": {"a.png": "IMG", "b.png": "IMG", "c.png": "IMG", "metadata.csv": CSV + "c.png,z\na.png,x\n"},
    "a-row-names-a-missing-file": {"a.png": "IMG", "metadata.csv": CSV + "a.png,x\nmissing.png,y\n"},
    "rows-name-subfolders-and-a-file-twice": {"sub/a.png": "IMG", "b.png": "IMG",
                                              "metadata.csv": CSV + "sub/a.png,x\nb.png,y\nb.png,z\n./sub/../b.png,w\n"},
    "metadata-in-a-subfolder-is-relative-to-it": {"cats/a.png": "IMG", "cats/metadata.csv": CSV + "a.png,x\n", "dogs/b.png": "IMG"},
    "two-metadata-files": {"cats/a.png": "IMG", "cats/metadata.csv": CSV + "a.png,x\n", "dogs/b.png": "IMG",
                           "dogs/metadata.csv": CSV + "b.png,y\n"},
    "jsonl": {"a.png": "IMG", "b.png": "IMG", "metadata.jsonl": '{"file_name": "b.png", "text": "x"}\n{"file_name": "a.png"}\n'},
    "csv-and-jsonl": {"a/x.png": "IMG", "a/metadata.csv": CSV + "x.png,t\n", "b/y.png": "IMG",
                      "b/metadata.jsonl": '{"file_name": "y.png", "text": "t"}\n'},
    "no-file-name-column": {"a.png": "IMG", "metadata.csv": "image,text\na.png,x\n"},
    "image-file-name-column": {"a.png": "IMG", "b.png": "IMG", "metadata.csv": "image_file_name,text\nb.png,x\n"},
    "another-file-name-column": {"a.png": "IMG", "metadata.csv": "photo_file_name,text\na.png,x\n"},
    "numeric-file-names": {"1": "IMG", "2": "IMG", "metadata.csv": "file_name,text\n1,x\n2,y\n"},
    "jsonl-numeric-file-name": {"a.png": "IMG", "metadata.jsonl": '{"file_name": 1}\n'},
    "jsonl-file-name-changes-type": {"a.png": "IMG", "metadata.jsonl": '{"file_name": "a.png"}\n{"file_name": 2}\n'},
    "a-row-leaves-the-folder": {"a.png": "IMG", "metadata.csv": CSV + "a.png,x\n../a.png,y\n"},
    "an-absolute-path": {"a.png": "IMG", "metadata.csv": CSV + "/etc/passwd,x\n"},
    "a-url": {"a.png": "IMG", "metadata.csv": CSV + "file://a.png,x\n"},
    "an-empty-file-name": {"a.png": "IMG", "b.png": "IMG", "metadata.csv": CSV + "a.png,x\n,y\n"},
    "split-folders-with-metadata": {"train/a.png": "IMG", "train/b.png": "IMG", "train/metadata.csv": CSV + "a.png,x\n",
                                    "test/c.png": "IMG", "test/metadata.csv": CSV + "c.png,y\n"},
    "metadata-only-in-the-test-split": {"train/a.png": "IMG", "train/b.png": "IMG", "test/c.png": "IMG",
                                        "test/metadata.csv": CSV + "c.png,y\n"},
    "a-root-metadata-file-is-in-no-split": {"train/a.png": "IMG", "train/b.png": "IMG", "test/c.png": "IMG",
                                            "metadata.csv": CSV + "train/a.png,x\n"},
    "splits-with-different-columns": {"train/a.png": "IMG", "train/metadata.csv": CSV + "a.png,x\n", "test/c.png": "IMG",
                                      "test/metadata.csv": "file_name,label\nc.png,1\n"},
    "a-test-split-row-leaves-its-folder": {"train/a.png": "IMG", "train/metadata.csv": CSV + "a.png,x\n",
                                           "test/c.png": "IMG", "test/metadata.csv": CSV + "../train/a.png,y\n"},
    "a-row-names-a-text-file-and-a-hidden-image": {"a.png": "IMG", "notes.txt": "text", ".b.png": "IMG",
                                                   "metadata.csv": CSV + "notes.txt,x\na.png,y\n.b.png,z\n"},
    "a-metadata-file-alone-names-the-split": {"a.png": "IMG", "b.png": "IMG", "test/metadata.csv": CSV + "../a.png,x\n"},
    "metadata-names-are-exact": {"a.png": "IMG", "Metadata.csv": CSV + "a.png,x\n", "metadata.CSV": CSV + "a.png,x\n"},
    "quoted-csv-fields": {"a b.png": "IMG", "c,d.png": "IMG", "e.png": "IMG",
                          "metadata.csv": 'file_name,text\n"a b.png","x, y"\n"c,d.png","line\none"\ne.png,"say ""hi"""\n'},
    "csv-with-a-bom-and-blank-lines": {"a.png": "IMG", "b.png": "IMG", "metadata.csv": "\ufefffile_name,text\na.png,x\n\nb.png,y\n"},
    "jsonl-blank-lines-and-extra-columns": {"a.png": "IMG", "b.png": "IMG",
                                            "metadata.jsonl": '{"file_name": "a.png", "n": 1}\n\n{"file_name": "b.png", "m": [1]}\n'},
    "double-extension-and-other-formats": {"a.png.txt": "text", "b.tif": "IMG", "c.webp": "IMG", "d.PNG": "IMG",
                                           "e.jpg.gz": "IMG", "g.txt": "text"},
    # a column of one name and two types: across splits datasets compares the features (names and types) of one metadata
    # file of each split; in a split it takes the features of whichever file its set gives first and converts the other
    # files' values with Value.encode_example (int(v), float(v), str(v), bool(v))
    "split-files-int-and-string-column": two_metadata_files("label", "1", "cat"),
    "split-files-int-and-double-column": two_metadata_files("label", "1", "2.5"),
    "split-files-bool-and-string-column": two_metadata_files("flag", "True", "cat"),
    "split-files-int-and-underscored-digits": two_metadata_files("label", "1", "1_000"),
    "split-files-int-and-infinity": two_metadata_files("label", "1", "inf"),
    "split-files-empty-and-string-column": two_metadata_files("text", "", "cat"),
    "split-files-jsonl-null-and-string": two_metadata_files("text", "null", '"t"', jsonl=True),
    "split-files-different-columns": {"a/x.png": "IMG", "a/metadata.csv": CSV + "x.png,t\n", "b/y.png": "IMG",
                                      "b/metadata.csv": "file_name,label\ny.png,1\n"},
    "splits-int-and-string-column": {"train/a.png": "IMG", "train/metadata.csv": "file_name,label\na.png,1\n", "test/c.png": "IMG",
                                     "test/metadata.csv": "file_name,label\nc.png,cat\n"},
}


def load_splits_make():
    spec = importlib.util.spec_from_file_location("splits_make", HERE.parent / "datasets-splits" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- stubs of datasets' feature classes and pyarrow's readers --------------------------------------------------

class Value:
    def __init__(self, dtype):
        self.dtype = dtype
        self.pa_type = dtype

    def __eq__(self, other):
        return isinstance(other, Value) and other.dtype == self.dtype

    def __repr__(self):
        return f"Value({self.dtype!r})"


class List:
    def __init__(self, feature, length=-1):
        self.feature, self.length = feature, length

    def __eq__(self, other):
        return isinstance(other, List) and other.feature == self.feature and other.length == self.length

    def __repr__(self):
        return f"List({self.feature!r})"


class LargeList(List):
    pass


class ImageFeature:
    def encode_example(self, value):
        return value

    def __eq__(self, other):
        return isinstance(other, ImageFeature)

    def __repr__(self):
        return "Image()"


class Features(dict):
    @staticmethod
    def from_arrow_schema(schema):
        return Features({name: Value(dtype) for name, dtype in schema})


class ArrowInvalid(Exception):
    pass


class ArrowTypeError(Exception):
    pass


class Table:
    """What the builder reads of a pyarrow Table: its schema (name, type) pairs, len() and to_pylist()."""

    def __init__(self, schema, rows):
        self.schema, self.rows = schema, rows

    def __len__(self):
        return len(self.rows)

    def to_pylist(self):
        return [dict(r) for r in self.rows]

    @staticmethod
    def from_pandas(df):
        import numpy as np
        schema, columns = [], []
        for name in df.columns:
            col = df[name]
            kind = col.dtype.kind
            if kind == "O":
                values = [None if (isinstance(v, float) and math.isnan(v)) else v for v in col.tolist()]
                kinds = {type(v) for v in values if v is not None}
                if kinds - {str}:
                    raise ArrowTypeError(f"Expected bytes, got a '{next(iter(kinds - {str})).__name__}' object")
                dtype = "string" if kinds else "null"
            elif kind in "iu":
                dtype, values = "int64", [int(v) for v in col.tolist()]
            elif kind == "f":
                dtype, values = "double", [None if math.isnan(v) else float(v) for v in col.tolist()]
            elif kind == "b":
                dtype, values = "bool", [bool(v) for v in col.tolist()]
            else:
                raise NotImplementedError(col.dtype)
            schema.append((str(name), dtype))
            columns.append(values)
        return Table(schema, [dict(zip([s[0] for s in schema], row)) for row in zip(*columns)] if columns else [])


ORDER = {}  # split name -> the order (a permutation of the sorted files) its metadata file set iterates in


class SplitFiles(set):
    """all_metadata_files[split]: a set, which Python iterates in hash order (another each run unless PYTHONHASHSEED is
    fixed), so datasets reads a split's metadata files in any order; here in the order ORDER gives, to run them all."""

    def __init__(self, split):
        super().__init__()
        self.split = split

    def __iter__(self):
        items = sorted(set.__iter__(self))
        perm = ORDER.get(self.split)
        return iter([items[i] for i in perm] if perm is not None and len(perm) == len(items) else items)


class MetadataFiles(dict):
    """collections.defaultdict(set) as the builder makes it, with SplitFiles for its sets."""

    def __missing__(self, key):
        value = self[key] = SplitFiles(key)
        return value


def arrow_types_namespace():
    """pyarrow.types' predicates for the dtype strings of the Value stub."""
    ints = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
    return types.SimpleNamespace(is_boolean=lambda t: t == "bool", is_integer=lambda t: t in ints,
                                 is_floating=lambda t: t in {"float16", "float32", "float64", "double"},
                                 is_string=lambda t: t == "string", is_large_string=lambda t: t == "large_string",
                                 is_string_view=lambda t: t == "string_view")


def json_type(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    return "list" if isinstance(v, list) else "struct"


def read_json(stream, read_options=None):
    """pyarrow.json.read_json's result for newline-delimited objects: columns in first-seen order, missing keys null,
    int and double widen to double, any other change of type an ArrowInvalid."""
    rows = [json.loads(line) for line in stream.read().decode("utf-8").splitlines() if line.strip()]
    types_, order = {}, []
    for i, row in enumerate(rows):
        for k, v in row.items():
            t = json_type(v)
            if k not in types_:
                order.append(k)
                types_[k] = t
            elif t is not None and types_[k] is not None and t != types_[k]:
                if {t, types_[k]} == {"int64", "double"}:
                    types_[k] = "double"
                else:
                    raise ArrowInvalid(f"JSON parse error: Column(/{k}) changed from {types_[k]} to {t} in row {i}")
            elif types_[k] is None:
                types_[k] = t
    return Table([(k, types_[k] or "null") for k in order], [{k: r.get(k) for k in order} for r in rows])


def builder_namespace(splits_make, ds_git):
    show = splits_make.show
    stub = types.SimpleNamespace

    @dataclasses.dataclass
    class BuilderConfig:
        name: str = "default"
        version: object = None
        data_dir: object = None
        data_files: object = None
        description: object = None

        def __post_init__(self):
            pass

    class GeneratorBasedBuilder:
        pass

    class SplitGenerator:
        def __init__(self, name, gen_kwargs):
            self.name, self.gen_kwargs = name, gen_kwargs

    logger = stub(debug=splits_make.quiet, info=splits_make.quiet, warning=splits_make.quiet)
    datasets = stub(BuilderConfig=BuilderConfig, GeneratorBasedBuilder=GeneratorBasedBuilder, SplitGenerator=SplitGenerator,
                    DatasetInfo=lambda features=None: stub(features=features), Features=Features, Value=Value, List=List,
                    Image=ImageFeature, ClassLabel=lambda names: ("ClassLabel", tuple(names)),
                    utils=stub(logging=stub(get_logger=lambda name: logger)))
    typing = __import__("typing")
    feats = {"Features": Features, "List": List, "LargeList": LargeList, "Optional": typing.Optional, "Callable": typing.Callable,
             "Union": typing.Union, "Literal": typing.Literal, "FeatureType": object, "_VisitPath": list}
    feats["pa"] = types.SimpleNamespace(types=arrow_types_namespace())
    source = show(ds_git, TAG, "src/datasets/features/features.py")
    splits_make.exec_body(source, feats, only={"_visit", "_visit_with_path", "encode_nested_example", "_check_non_null_non_empty_recursive"})
    # Value.encode_example of the tag, bound to the Value stub (its pa_type: the dtype string)
    value_class = next(n for n in __import__("ast").parse(source).body if getattr(n, "name", None) == "Value")
    method = next(n for n in value_class.body if getattr(n, "name", None) == "encode_example")
    exec(compile(__import__("ast").Module(body=[method], type_ignores=[]), "<datasets>", "exec"), feats)
    Value.encode_example = feats.pop("encode_example")
    Features.encode_example = lambda self, example: feats["encode_nested_example"](self, example)  # cast_to_python_objects: plain values already
    ns = {"collections": stub(defaultdict=lambda factory: MetadataFiles()), "io": io, "itertools": itertools, "os": os, "dataclass": dataclasses.dataclass,
          "Any": typing.Any, "Callable": typing.Callable, "Iterator": typing.Iterator, "Optional": typing.Optional,
          "Union": __import__("typing").Union, "pd": __import__("pandas"),
          "pa": stub(Table=Table, ArrowInvalid=ArrowInvalid, ArrowNotImplementedError=NotImplementedError),
          "paj": stub(read_json=read_json, ReadOptions=lambda block_size: None), "pq": None, "ds": stub(Expression=object),
          "datasets": datasets, "config": stub(DEFAULT_MAX_BATCH_SIZE=1000), "Key": lambda shard, sample: (shard, sample),
          "FeatureType": object, "_visit": feats["_visit"], "_visit_with_path": feats["_visit_with_path"],
          "_VisitPath": list, "require_storage_cast": lambda feature: False, "readline": None, "logger": logger}
    splits_make.exec_body(show(ds_git, TAG, "src/datasets/packaged_modules/folder_based_builder/folder_based_builder.py"), ns)
    fb_module = stub(**ns)
    img = {"datasets": datasets, "folder_based_builder": stub(folder_based_builder=fb_module), "logger": logger}
    img["folder_based_builder"] = fb_module
    splits_make.exec_body(show(ds_git, TAG, "src/datasets/packaged_modules/imagefolder/imagefolder.py"), img)
    return img


class DownloadManager:
    download_config = types.SimpleNamespace()

    def download(self, files):
        return list(files)

    def download_and_extract(self, archives):
        return list(archives)

    def iter_files(self, path):
        raise NotImplementedError("archives are not run here")


def run_layout(ns, img, layout):
    """The layout's result with each split's metadata files in sorted order, plus, where another order of them gives
    another outcome (an error or none, and which), every outcome as `order_dependent`."""
    ORDER.clear()
    first, sizes = run_layout_once(ns, img, layout)
    outcomes = set()
    for perms in itertools.product(*[list(itertools.permutations(range(n))) for n in sizes.values()]):
        ORDER.clear()
        ORDER.update(zip(sizes, perms))
        result, _ = run_layout_once(ns, img, layout)
        outcomes.add(result.get("error", "no error"))
    ORDER.clear()
    if len(outcomes) > 1:
        first["order_dependent"] = sorted(outcomes)
    return first


def encode_and_write(features, example):
    """GeneratorBasedBuilder._prepare_split_single: info.features.encode_example(example), then the ArrowWriter, which
    (stubbed here) refuses a value in a column of type null."""
    encoded = features.encode_example(example)
    for key, feature in features.items():
        if isinstance(feature, Value) and feature.dtype == "null" and encoded.get(key) is not None:
            raise ArrowInvalid(f"Invalid null value (column {key!r}: {encoded[key]!r})")


def run_layout_once(ns, img, layout):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp, "data")
        for rel, content in layout.items():
            path = Path(base, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"" if content == "IMG" else content.encode())
        base_path = base.resolve().as_posix()
        patterns = ns["get_data_patterns"](base_path)
        data_files = ns["DataFilesDict"].from_patterns(patterns, base_path=base_path)
        if "train" not in data_files:
            return {"error": f'Unknown split "train". Should be one of {list(data_files)}.'}, {}
        builder = img["ImageFolder"].__new__(img["ImageFolder"])
        builder.config = img["ImageFolderConfig"](data_files=data_files)
        builder.info = types.SimpleNamespace(features=None)
        rel = lambda p: os.path.relpath(p, base_path).replace(os.sep, "/")
        sizes = {}
        try:
            splits = builder._split_generators(DownloadManager())
            sizes = {s.name: len(s.gen_kwargs["metadata_files"]) for s in splits if len(s.gen_kwargs["metadata_files"]) > 1}
            examples = {s.name: [e for _, e in builder._generate_examples(**s.gen_kwargs)] for s in splits}
            for split_examples in examples.values():
                for example in split_examples:
                    encode_and_write(builder.info.features, dict(example))
        except Exception as e:  # noqa: BLE001 - datasets' error is the expected result
            msg = str(e).replace(base_path + "/", "").replace(base_path, ".")
            return {"error": f"{type(e).__name__}: {msg}"}, sizes
        features = list(builder.info.features)
        out = {"columns": features, "metadata": bool(splits[0].gen_kwargs["add_metadata"])}
        if "image" not in features:  # train_unconditional reads examples["image"]
            out["error"] = "KeyError: 'image'"
            return out, sizes
        train = [e["image"] for e in examples["train"]]
        if any(p is None for p in train):
            out["error"] = "an example without an image (None)"
            return out, sizes
        out["train_images"] = [rel(p) for p in train]
        missing = [rel(p) for p in train if not os.path.isfile(p)]
        if missing:
            out["missing"] = missing
        return out, sizes


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # datasets prints sets in some messages: a fixed order
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ds_git, fsspec_git = sys.argv[1:3]
    splits_make = load_splits_make()
    with tempfile.TemporaryDirectory() as root:
        fsspec = splits_make.import_fsspec(fsspec_git, FSSPEC_TAG, root)
        ns = splits_make.datasets_namespace(ds_git, TAG, fsspec)
        ran, _ = splits_make.run_datasets_tests(ds_git, TAG, ns, fsspec)
        img = builder_namespace(splits_make, ds_git)
        results = {name: run_layout(ns, img, layout) for name, layout in LAYOUTS.items()}
    out = {"datasets": TAG, "fsspec": FSSPEC_TAG, "datasets_test_cases_passed": sum(ran.values()),
           "image_extensions": img["IMAGE_EXTENSIONS"], "metadata_filenames": img["ImageFolder"].METADATA_FILENAMES,
           "layouts": [{"name": name, "files": LAYOUTS[name], **results[name]} for name in LAYOUTS]}
    for name in LAYOUTS:
        print(name, results[name])
    (HERE / "expected.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
