using System.Text;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Training;

/// <summary>
/// The files of a data folder that train_unconditional trains on. Its <c>load_dataset("imagefolder",
/// data_dir=..., split="train")</c> reads only the train split that datasets' default data-file patterns find in the
/// folder (data_files.py of datasets 5.0.1, the newest release, what the script's users install; docs/Training.md
/// says where datasets 2.16.1, of diffusers 0.25.1's time, differed): shards named
/// <c>data/{split}-NNNNN-of-NNNNN*.*</c>; else, in this order, a <c>*.eval</c> file (a <c>logs</c> split), a split
/// name in folder names (<c>train/</c>, <c>my_train/</c>, <c>train-2/</c>), a split name in file names
/// (<c>train_01.png</c>, <c>cat_train.png</c>); else every file is train. The first rule that matches any file gives
/// the splits; every file counts (a <c>results_test.txt</c> makes a test split), but datasets' own files
/// (<c>README.md</c>, <c>config.json</c>, …). A split name is <c>train</c>/<c>training</c>,
/// <c>validation</c>/<c>valid</c>/<c>dev</c>/<c>val</c> or <c>test</c>/<c>testing</c>/<c>eval</c>/<c>evaluation</c>,
/// with a separator (<c>-._ </c> or a digit) or the name's end on each side (case-sensitive: <c>contest.png</c>,
/// <c>trainer/</c> and <c>Train/</c> name no split). A file that two patterns of the train split match is listed
/// twice, as datasets lists it (<c>a_train/train/x.png</c>).
/// </summary>
public static class DataSplits
{
    /// <summary>What the patterns found: the rule, the splits in datasets' order and each one's files (relative paths, '/').</summary>
    public sealed record Selection(string Rule, IReadOnlyList<(string Name, IReadOnlyList<string> Files)> Splits)
    {
        /// <summary>Whether a split rule chose the files (false: no split names, every file is train).</summary>
        public bool SplitsFound => Rule != EveryFileIsTrain;

        /// <summary>The train split's files, in datasets' order (by pattern, then by path), a file twice where two patterns list it.</summary>
        public IReadOnlyList<string> Train => Splits.First(s => s.Name == "train").Files;
    }

    // datasets' SPLIT_KEYWORDS and NON_WORDS_CHARS
    private static readonly (string Split, string[] Keywords)[] Keywords =
    [
        ("train", ["train", "training"]),
        ("validation", ["validation", "valid", "dev", "val"]),
        ("test", ["test", "testing", "eval", "evaluation"]),
    ];
    private const string Sep = "[-._ 0-9]";

    // KEYWORDS_IN_DIR_NAME_BASE_PATTERNS and KEYWORDS_IN_FILENAME_BASE_PATTERNS (the fsspec >= 2023.12 ones); {0}: a keyword
    private static readonly string[] InFolderName = ["**/{0}/**", "**/{0}" + Sep + "*/**", "**/*" + Sep + "{0}/**", "**/*" + Sep + "{0}" + Sep + "*/**"];
    private static readonly string[] InFileName = ["**/{0}" + Sep + "*", "**/*" + Sep + "{0}" + Sep + "*"];

    // SPLIT_PATTERN_SHARDED ({0}: the split), tried first; the split name is what its basename has before the digits
    private const string Sharded = "data/{0}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*";
    private static readonly Regex ShardSplitName = new("^(?<split>.+)-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*");
    private static readonly Regex ValidSplitName = new(@"^\w+(\.\w+)*$"); // datasets' naming._split_re

    private const string EveryFileIsTrain = "no split names in the paths: every file is train";

    // ALL_DEFAULT_PATTERNS, tried in this order after the shards: the first group with a split that matches a file
    // gives the splits (those of its splits that match), each with all its patterns
    private static readonly (string Rule, (string Split, Glob[] Patterns)[] Splits)[] Groups =
    [
        ("a *.eval file (datasets' inspect_ai logs)", [("logs", [new Glob("**/*.eval")])]),
        ("split names in folder names", KeywordSplits(InFolderName)),
        ("split names in file names", KeywordSplits(InFileName)),
        (EveryFileIsTrain, [("train", [new Glob("**")])]),
    ];

    // FILES_TO_IGNORE: never a data file
    private static readonly string[] Ignored = ["README.md", "config.json", "dataset_info.json", "dataset_infos.json", "dummy_data.zip", "dataset_dict.json"];

    private static readonly string[] DefaultSplits = ["train", "validation", "test"];

    private static (string, Glob[])[] KeywordSplits(string[] basePatterns) =>
        Keywords.Select(k => (k.Split, k.Keywords.SelectMany(w => basePatterns.Select(p => new Glob(string.Format(p, w)))).ToArray())).ToArray();

    /// <summary>
    /// The splits datasets finds among <paramref name="files"/> (paths relative to <paramref name="folder"/>, '/'
    /// separated, hidden files and folders and <c>__</c> folders already left out, as datasets does). A folder whose
    /// rule finds no train split, or a shard whose split name datasets refuses, is an error naming what was found.
    /// </summary>
    public static Selection Select(string folder, IReadOnlyList<string> files)
    {
        var candidates = files.Where(f => !Ignored.Contains(f[(f.LastIndexOf('/') + 1)..], StringComparer.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        var shard = new Glob(string.Format(Sharded, "*"));
        if (candidates.Where(f => shard.IsMatch(f)).ToList() is { Count: > 0 } shards)
        {
            var named = shards.Select(f => (File: f, Split: ShardSplitName.Match(f[(f.LastIndexOf('/') + 1)..]).Groups["split"].Value)).ToList();
            if (named.FirstOrDefault(s => !ValidSplitName.IsMatch(s.Split)) is { File: not null } bad)
                throw new DiffusersException(
                    $"{folder}: {bad.File}: '{bad.Split}' is no split name datasets takes (letters, digits and _, in parts joined by '.'), " +
                    "and shards named data/{split}-NNNNN-of-NNNNN give the splits, so train_unconditional's loader fails on it; rename the file")
                { FilePath = Path.Combine(folder, bad.File) };
            var names = named.Select(s => s.Split).Distinct().ToList();
            var ordered = DefaultSplits.Where(names.Contains).Concat(names.Except(DefaultSplits).Order(StringComparer.Ordinal));
            return Take(folder, "shards named data/{split}-NNNNN-of-NNNNN", candidates,
                ordered.Select(s => (s, new[] { new Glob(string.Format(Sharded, s)) })).ToList());
        }
        foreach (var (rule, splits) in Groups)
            if (splits.Where(s => s.Patterns.Any(p => candidates.Any(f => p.IsMatch(f)))).ToList() is { Count: > 0 } found)
                return Take(folder, rule, candidates, found);
        return new Selection(EveryFileIsTrain, [("train", [])]); // no files at all
    }

    private static Selection Take(string folder, string rule, List<string> candidates, List<(string Split, Glob[] Patterns)> splits)
    {
        var selection = new Selection(rule, splits.Select(s => (s.Split, (IReadOnlyList<string>)s.Patterns.SelectMany(p => candidates.Where(f => p.IsMatch(f))).ToList())).ToList());
        if (splits.All(s => s.Split != "train"))
        {
            string found = string.Join(", ", selection.Splits.Select(s => $"{s.Name} ({s.Files[0]}{(s.Files.Distinct().Count() is > 1 and var n ? $" and {n - 1} more" : "")})"));
            string names = string.Join(", ", selection.Splits.Select(s => $"'{s.Name}'"));
            throw new DiffusersException(
                $"{folder}: no train split: datasets' imagefolder loader, which train_unconditional reads with split=\"train\", finds {rule} here: {found}, " +
                $"and stops with 'Unknown split \"train\". Should be one of [{names}].'; name the training images' folder or files train (docs/Training.md), " +
                "or give --data the folder of the training images")
            { FilePath = folder };
        }
        return selection;
    }

    // A glob as fsspec's glob_translate reads it (fsspec >= 2023.12; Python's glob.translate(recursive=True,
    // include_hidden=True)): a "**" part is any number of folders (at the end: anything), "*" any characters but '/',
    // [...] a class
    private sealed class Glob
    {
        private readonly Regex _regex;
        private readonly string _literal; // its longest run of plain characters: a path without it cannot match (a quick test first)

        public Glob(string pattern)
        {
            var regex = new StringBuilder(@"\A");
            string[] parts = pattern.Split('/');
            for (int i = 0; i < parts.Length; i++)
            {
                bool last = i == parts.Length - 1;
                string part = parts[i];
                if (part == "**") { regex.Append(last ? ".*" : "(?:.+/)?"); continue; }
                for (int j = 0; j < part.Length; j++)
                {
                    if (part[j] == '*') regex.Append("[^/]*");
                    else if (part[j] == '[')
                    {
                        int end = part.IndexOf(']', j + 1);
                        regex.Append(part, j, end - j + 1);
                        j = end;
                    }
                    else regex.Append(Regex.Escape(part[j].ToString()));
                }
                if (!last) regex.Append('/');
            }
            _regex = new Regex(regex.Append(@"\z").ToString(), RegexOptions.Singleline);
            _literal = Regex.Split(pattern, @"\*|\[[^\]]*\]|/").MaxBy(run => run.Length)!;
        }

        public bool IsMatch(string path) => path.Contains(_literal, StringComparison.Ordinal) && _regex.IsMatch(path);
    }
}
