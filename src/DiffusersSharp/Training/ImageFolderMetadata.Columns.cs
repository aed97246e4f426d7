using System.Globalization;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Training;

// The column types of metadata files, as datasets 5.0.1 compares and converts them
internal static partial class ImageFolderMetadata
{
    // A JSON Lines value other than a string or null (its JSON text): a number, true or false, an array, an object
    private sealed record JsonScalar(string Raw);

    /// <summary>
    /// folder_based_builder's check of the metadata files' features, and GeneratorBasedBuilder's encoding of every row
    /// with them. datasets reads one metadata file (with rows) of each split for its features, the first its set of the
    /// split's files gives (Python's set order: another each run), and stops where two splits' differ, in names or
    /// types ('Metadata files ... have different features'): so two files of two splits must agree. The data set's
    /// features are that first file's, and every row of every file is encoded with them: a value of a column another
    /// file has as int64 goes through <c>int(v)</c>, as double <c>float(v)</c> (bool and string never fail, a null
    /// column holds no value), so two files of one split may differ in names (a missing column is null, another dropped)
    /// and in types where each one's values convert to the other's type; where they do not, datasets stops in the runs
    /// that read the other file first, and so does this check.
    /// </summary>
    private static void CheckColumns(string folder, List<Table> tables, Func<string, string> splitOf)
    {
        var read = tables.Where(t => t.Rows.Count > 0).ToList(); // datasets takes no features from a file without rows
        for (int i = 0; i < read.Count; i++)
            for (int j = i + 1; j < read.Count; j++)
            {
                Table a = read[i], b = read[j];
                string pathA = Path.Combine(folder, a.RelativePath), pathB = Path.Combine(folder, b.RelativePath);
                if (splitOf(a.RelativePath) != splitOf(b.RelativePath))
                {
                    if (!a.Columns.ToHashSet().SetEquals(b.Columns))
                        throw new DiffusersException(
                            $"{pathA} and {pathB} have different columns ({string.Join(", ", a.Columns)} / {string.Join(", ", b.Columns)}): " +
                            "datasets' imagefolder loader stops with 'Metadata files ... have different features'")
                        { FilePath = pathB };
                    if (a.Columns.FirstOrDefault(c => a.Types[c] != b.Types[c]) is { } column)
                        throw new DiffusersException(
                            $"{pathA} and {pathB} have the column '{column}' as {a.Types[column]} and as {b.Types[column]}: datasets' imagefolder loader compares " +
                            "the features (names and types) of its splits' metadata files and stops with 'Metadata files ... have different features'; " +
                            "write the column the same way in both")
                        { FilePath = pathB };
                    continue;
                }
                foreach (var column in a.Columns.Where(c => b.Types.TryGetValue(c, out var t) && t != a.Types[c]))
                {
                    CheckConverts(folder, from: b, to: a, column);
                    CheckConverts(folder, from: a, to: b, column);
                }
            }
    }

    // Every value of `from`'s column converted as datasets converts it to `to`'s type of the column
    private static void CheckConverts(string folder, Table from, Table to, string column)
    {
        string source = from.Types[column], target = to.Types[column];
        for (int i = 0; i < from.Rows.Count; i++)
        {
            if (Failure(from.Rows[i].GetValueOrDefault(column), source, target) is not { } why) continue;
            string path = Path.Combine(folder, from.RelativePath);
            throw new DiffusersException(
                $"{path} {(from.Kind == ".jsonl" ? "line" : "row")} {i + 1}: {column} {Shown(from.Rows[i][column])} ({source}), which {Path.Combine(folder, to.RelativePath)} " +
                $"has as {target}: datasets' imagefolder loader takes a split's column types from whichever of its metadata files it reads first (Python's set " +
                $"order, another each run) and converts the other files' values to them, and {why}, so it stops in the runs that read " +
                $"{to.RelativePath} first; write the column the same way in every metadata file")
            { FilePath = path };
        }
    }

    // Why Value(target).encode_example (then the Arrow column) fails on the value of a `source` column, or null
    private static string? Failure(object? value, string source, string target)
    {
        if (value is null || target is "string" or "bool") return null; // str(v), bool(v); None stays None
        string text = value switch { JsonScalar j => j.Raw, _ => (string)value };
        if (target == "null") return "pyarrow fails on a value in a column of type null ('Invalid null value')";
        if (source is "list" or "struct" || target is "list" or "struct")
            return $"DiffusersSharp does not follow datasets' conversions of list and object columns ({source} to {target})";
        if (target == "int64")
        {
            if (source == "double")
                return double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
                    ? null : "int() fails on it ('OverflowError: cannot convert float infinity to integer')";
            return source != "string" || PythonInt().IsMatch(text.Trim()) ? null : $"int() fails on it ('ValueError: invalid literal for int() with base 10: {Shown(value)}')";
        }
        // double: float(v)
        return source != "string" || PythonFloat().IsMatch(text.Trim()) ? null : $"float() fails on it ('ValueError: could not convert string to float: {Shown(value)}')";
    }

    private static string Shown(object? value) => value switch { JsonScalar j => j.Raw, _ => $"'{value}'" };

    // What Python's int() and float() take from a string (surrounding whitespace stripped): digits with single underscores
    // between them; float() also a decimal point, an exponent, nan, inf and infinity
    [GeneratedRegex(@"^[+-]?[0-9](_?[0-9])*$")]
    private static partial Regex PythonInt();

    [GeneratedRegex(@"^[+-]?(([0-9](_?[0-9])*(\.([0-9](_?[0-9])*)?)?|\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?|(?i:nan|inf|infinity))$")]
    private static partial Regex PythonFloat();
}
