using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DiffusersSharp.Training;

/// <summary>
/// datasets' imagefolder metadata files (folder_based_builder.py of datasets 5.0.1, which train_unconditional's
/// <c>load_dataset("imagefolder", data_dir=...)</c> runs): a <c>metadata.csv</c>, <c>metadata.jsonl</c> or
/// <c>metadata.parquet</c> among a split's files makes that split's examples its rows, not its image files. Each row's
/// <c>file_name</c> (or <c>image_file_name</c>) names the image, relative to the metadata file's folder, so the train
/// split trains on the images its rows name, once per row (an image without a row is left out; one named twice is read
/// twice), wherever below that folder they are. A metadata file in no split (a root one beside <c>train/</c> and
/// <c>test/</c>) is not read; one in another split only is checked, and the train split reads its images. What datasets
/// stops on stops here, named: metadata files of two formats, a file without a <c>file_name</c> column (or whose
/// column is numbers), metadata files of two splits whose columns differ (names or types), two of a split with a column
/// whose values datasets fails to convert to the other file's type (<see cref="CheckColumns"/>), a name with a URL scheme,
/// an absolute path or one leaving the metadata file's folder; and what train_unconditional then fails on: image
/// columns named otherwise than <c>image</c>, a train row without a name, or naming no file. Parquet metadata is not
/// read (an error: write it as CSV or JSON Lines). Other columns are not read further (the trainer uses the image only).
/// </summary>
internal static partial class ImageFolderMetadata
{
    private static readonly string[] FileNames = ["metadata.csv", "metadata.jsonl", "metadata.parquet"];

    /// <summary>Whether datasets takes the file for a metadata file (its exact name).</summary>
    public static bool IsMetadata(string relativePath) => FileNames.Contains(relativePath[(relativePath.LastIndexOf('/') + 1)..], StringComparer.Ordinal);

    /// <summary>
    /// What the metadata files give the train split: its metadata files (relative paths) and the images their rows name
    /// (full paths, one per row, in file then row order); no train metadata file: the split's image files are its examples.
    /// </summary>
    public sealed record Result(IReadOnlyList<string> TrainMetadataFiles, IReadOnlyList<string> Images);

    private sealed record Table(string RelativePath, string Kind, List<string> Columns, Dictionary<string, string> Types, List<Dictionary<string, object?>> Rows);

    /// <summary>
    /// The images (full paths) of the train split's metadata rows, or null when no split has a metadata file (the
    /// split's image files are then its examples). <paramref name="splits"/>: <see cref="DataSplits.Select"/>'s.
    /// </summary>
    public static Result? TrainImages(string folder, DataSplits.Selection splits)
    {
        var perSplit = splits.Splits.Select(s => (s.Name, Files: s.Files.Where(IsMetadata).Distinct().Order(StringComparer.Ordinal).ToList())).ToList();
        var all = perSplit.SelectMany(s => s.Files).Distinct().Order(StringComparer.Ordinal).ToList();
        if (all.Count == 0) return null;
        var kinds = all.Select(f => Path.GetExtension(f)).Distinct().ToList();
        if (kinds.Count > 1)
        {
            string a = all.First(f => Path.GetExtension(f) == kinds[0]), b = all.First(f => Path.GetExtension(f) == kinds[1]);
            throw new DiffusersException(
                $"{folder}: metadata files of two formats, {a} and {b}: datasets' imagefolder loader stops with 'Found metadata files with different extensions'; " +
                "write them all as metadata.csv or all as metadata.jsonl")
            { FilePath = Path.Combine(folder, b) };
        }
        var tables = all.ToDictionary(f => f, f => Read(folder, f), StringComparer.Ordinal);
        foreach (var t in tables.Values) CheckImageColumn(folder, t);
        CheckColumns(folder, all.Select(f => tables[f]).ToList(), f => perSplit.First(s => s.Files.Contains(f)).Name);
        // every split's rows are generated (datasets prepares them all), so a bad name in any of them stops the run
        var images = new List<string>();
        var train = perSplit.First(s => s.Name == "train").Files;
        foreach (var t in tables.Values)
        {
            bool isTrain = train.Contains(t.RelativePath);
            string dir = Path.GetDirectoryName(Path.Combine(folder, t.RelativePath))!;
            for (int i = 0; i < t.Rows.Count; i++)
            {
                string where = $"{Path.Combine(folder, t.RelativePath)} {(t.Kind == ".jsonl" ? "line" : "row")} {i + 1}";
                string? name = new[] { "file_name", "image_file_name" }.Select(c => t.Rows[i].GetValueOrDefault(c) as string).FirstOrDefault(v => !string.IsNullOrEmpty(v));
                if (name is null)
                {
                    if (!isTrain) continue;
                    throw new DiffusersException($"{where}: no file name: datasets' imagefolder loader gives the example no image, and train_unconditional fails on it") { FilePath = Path.Combine(folder, t.RelativePath) };
                }
                string relative = Relative(name, where, Path.Combine(folder, t.RelativePath));
                if (!isTrain) continue;
                string path = Path.Combine(dir, relative);
                if (!File.Exists(path))
                    throw new DiffusersException(
                        $"{where}: '{name}' names no file ({path}): datasets' imagefolder loader lists it, and PIL fails to open it when train_unconditional reads its batch")
                    { FilePath = path };
                images.Add(path);
            }
        }
        return new Result(train, images); // no train metadata file: the train split's image files are its examples
    }

    // The row's file name as datasets joins it to the metadata file's folder: the checks of folder_based_builder's
    // set_feature (no "://", not absolute, not leaving the folder, after posixpath.normpath), then '\' read as '/'
    private static string Relative(string name, string where, string metadataFile)
    {
        if (name.Contains("://", StringComparison.Ordinal))
            throw new DiffusersException($"{where}: file_name '{name}' has a URL scheme, which datasets' imagefolder loader refuses " +
                "('URL schemes (e.g. 'file://', 'local://') are not allowed'); give a path relative to the metadata file's folder")
            { FilePath = metadataFile };
        string normal = NormPath(name).Replace('\\', '/');
        if (name.StartsWith('/') || normal.StartsWith('/') || normal == ".." || normal.StartsWith("../", StringComparison.Ordinal))
            throw new DiffusersException($"{where}: file_name '{name}' is {(name.StartsWith('/') ? "an absolute path" : "outside the metadata file's folder")}, which datasets' imagefolder loader refuses " +
                "('Absolute paths and parent-directory ('..') traversal that escape the dataset directory are not allowed'); give a path relative to the metadata file's folder")
            { FilePath = metadataFile };
        return normal;
    }

    // Python's posixpath.normpath
    private static string NormPath(string path)
    {
        if (path.Length == 0) return ".";
        int initial = path.StartsWith('/') ? (path.StartsWith("//", StringComparison.Ordinal) && !path.StartsWith("///", StringComparison.Ordinal) ? 2 : 1) : 0;
        var parts = new List<string>();
        foreach (var part in path.Split('/'))
        {
            if (part is "" or ".") continue;
            if (part != ".." || (initial == 0 && parts.Count == 0) || (parts.Count > 0 && parts[^1] == "..")) parts.Add(part);
            else if (parts.Count > 0) parts.RemoveAt(parts.Count - 1);
        }
        string joined = new string('/', initial) + string.Join('/', parts);
        return joined.Length == 0 ? "." : joined;
    }

    // datasets' _set_feature: a string column file_name or *_file_name, or a list column file_names or *_file_names,
    // is a media column; file_name and image_file_name make the "image" one train_unconditional reads
    private static void CheckImageColumn(string folder, Table t)
    {
        string file = Path.Combine(folder, t.RelativePath);
        bool IsMedia(string c) => (t.Types[c] == "string" && (c == "file_name" || c.EndsWith("_file_name", StringComparison.Ordinal)))
            || (t.Types[c] == "list" && (c == "file_names" || c.EndsWith("_file_names", StringComparison.Ordinal)));
        var media = t.Columns.Where(IsMedia).ToList();
        if (media.Count == 0)
        {
            string why = t.Columns.FirstOrDefault(c => c is "file_name" or "image_file_name") is { } c
                ? $"its {c} column holds {(t.Types[c] == "null" ? "no values" : t.Types[c] is "int64" or "double" ? "numbers (a name without an extension reads as one)" : t.Types[c] + " values")}, not text"
                : $"it has no file_name column (its columns: {string.Join(", ", t.Columns)})";
            throw new DiffusersException(
                $"{file}: {why}: datasets' imagefolder loader stops with '`file_name`, `*_file_name`, `file_names` or `*_file_names` must be present as dictionary key in metadata files'; " +
                "name the images in a file_name column, with their extensions")
            { FilePath = file };
        }
        if (!media.Any(c => c is "file_name" or "image_file_name"))
            throw new DiffusersException(
                $"{file}: its images are in the column {media[0]}, which datasets' imagefolder loader names " +
                $"'{(media[0].EndsWith('s') ? media[0][..^"_file_names".Length] is { Length: > 0 } p ? p : "images" : media[0][..^"_file_name".Length])}', " +
                "and train_unconditional reads the column 'image' (KeyError: 'image'); name the column file_name")
            { FilePath = file };
    }

    private static Table Read(string folder, string relative)
    {
        string path = Path.Combine(folder, relative);
        string kind = Path.GetExtension(relative);
        if (kind == ".parquet")
            throw new DiffusersException($"{path}: DiffusersSharp does not read Parquet metadata (datasets' imagefolder loader does); write it as metadata.csv or metadata.jsonl with a file_name column") { FilePath = path };
        string text;
        try { text = File.ReadAllText(path, new UTF8Encoding(false, throwOnInvalidBytes: true)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DecoderFallbackException)
        {
            throw new DiffusersException($"{path}: cannot read the metadata file: {e.Message}", e) { FilePath = path };
        }
        if (text.StartsWith('\uFEFF')) text = text[1..];
        return kind == ".csv" ? MetadataCsv.Read(path, relative, text) : ReadJsonLines(path, relative, text);
    }

    // pyarrow.json.read_json's table: one object a line (blank lines skipped), columns in first-seen order, a key
    // missing from a line null there, int and double widening to double, any other change of type an error
    private static Table ReadJsonLines(string path, string relative, string text)
    {
        var columns = new List<string>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var rows = new List<Dictionary<string, object?>>();
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n].TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new DiffusersException($"{path} line {n + 1}: not JSON: {e.Message}", e) { FilePath = path }; }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new DiffusersException($"{path} line {n + 1}: not a JSON object (each line of a metadata.jsonl is one row)") { FilePath = path };
                var row = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    string? type = p.Value.ValueKind switch
                    {
                        JsonValueKind.String => "string",
                        JsonValueKind.Number => p.Value.TryGetInt64(out _) && !p.Value.GetRawText().Contains('.') && !p.Value.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) ? "int64" : "double",
                        JsonValueKind.True or JsonValueKind.False => "bool",
                        JsonValueKind.Array => "list",
                        JsonValueKind.Object => "struct",
                        _ => null,
                    };
                    if (!types.TryGetValue(p.Name, out var known))
                    {
                        columns.Add(p.Name);
                        types[p.Name] = type ?? "null";
                    }
                    else if (type is not null && known != "null" && type != known)
                    {
                        if (type is "int64" or "double" && known is "int64" or "double") types[p.Name] = "double";
                        else
                            throw new DiffusersException($"{path} line {n + 1}: '{p.Name}' is {type} where earlier lines have {known}: pyarrow stops with " +
                                $"'JSON parse error: Column(/{p.Name}) changed from {known} to {type}'")
                            { FilePath = path };
                    }
                    else if (type is not null && known == "null") types[p.Name] = type;
                    row[p.Name] = p.Value.ValueKind switch
                    {
                        JsonValueKind.String => p.Value.GetString(),
                        JsonValueKind.Null => null,
                        _ => new JsonScalar(p.Value.GetRawText()),
                    };
                }
                rows.Add(row);
            }
        }
        return new Table(relative, ".jsonl", columns, types, rows);
    }

    // pandas.read_csv's reading (the C parser's defaults) of what the trainer needs: the header, each row's fields,
    // the column types pandas infers (int64, double, bool, or text), NaN for its default missing-value strings
    private static class MetadataCsv
    {
        private static readonly HashSet<string> Missing = new(StringComparer.Ordinal)
        {
            "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
            "NULL", "NaN", "None", "n/a", "nan", "null",
        };

        public static Table Read(string path, string relative, string text)
        {
            var records = Records(path, text);
            if (records.Count == 0) throw new DiffusersException($"{path}: the metadata file is empty (pandas: 'No columns to parse from file')") { FilePath = path };
            var header = records[0].Fields;
            var rows = new List<Dictionary<string, object?>>();
            for (int r = 1; r < records.Count; r++)
            {
                var fields = records[r].Fields;
                if (fields.Count > header.Count)
                    throw new DiffusersException($"{path} line {records[r].Line}: {fields.Count} fields where the header has {header.Count}: " +
                        $"pandas stops with 'Expected {header.Count} fields in line {records[r].Line}, saw {fields.Count}' (quote a field that holds a comma)")
                    { FilePath = path };
                var row = new Dictionary<string, object?>(StringComparer.Ordinal);
                for (int c = 0; c < header.Count; c++)
                    row[header[c]] = c < fields.Count && !Missing.Contains(fields[c]) ? fields[c] : null;
                rows.Add(row);
            }
            var types = header.ToDictionary(h => h, h => TypeOf(rows.Select(r => r[h] as string)), StringComparer.Ordinal);
            return new Table(relative, ".csv", [.. header], types, rows);
        }

        private static string TypeOf(IEnumerable<string?> values)
        {
            var present = values.Where(v => v is not null).Select(v => v!).ToList();
            if (present.Count == 0) return "double"; // all NaN
            if (present.All(v => long.TryParse(v.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))) return "int64";
            if (present.All(IsNumber)) return "double";
            if (present.All(v => v is "True" or "False" or "TRUE" or "FALSE" or "true" or "false")) return "bool";
            return "string";
        }

        private static bool IsNumber(string v) =>
            double.TryParse(v.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out _)
            || v.Trim().ToLowerInvariant() is "inf" or "-inf" or "+inf" or "infinity" or "-infinity" or "+infinity";

        private sealed record Record(int Line, List<string> Fields);

        // RFC 4180 records: ',' separated, '"' quoted with "" for a quote, line breaks inside quotes; empty lines skipped
        private static List<Record> Records(string path, string text)
        {
            var records = new List<Record>();
            var fields = new List<string>();
            var field = new StringBuilder();
            bool quoted = false, any = false;
            int line = 1, start = 1;
            for (int i = 0; i <= text.Length; i++)
            {
                char ch = i < text.Length ? text[i] : '\n';
                if (quoted)
                {
                    if (ch == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                    else if (ch == '"') quoted = false;
                    else
                    {
                        if (ch == '\n') line++;
                        if (i == text.Length) throw new DiffusersException($"{path} line {start}: a quoted field is not closed (pandas: 'EOF inside string')") { FilePath = path };
                        field.Append(ch);
                    }
                    continue;
                }
                if (ch == '"' && field.Length == 0) { quoted = true; any = true; }
                else if (ch == ',') { fields.Add(field.ToString()); field.Clear(); any = true; }
                else if (ch == '\r' && i + 1 < text.Length && text[i + 1] == '\n') continue;
                else if (ch == '\n' || ch == '\r')
                {
                    if (any || field.Length > 0)
                    {
                        fields.Add(field.ToString());
                        records.Add(new Record(start, [.. fields]));
                    }
                    fields.Clear();
                    field.Clear();
                    any = false;
                    if (i < text.Length) line++;
                    start = line;
                }
                else { field.Append(ch); any = true; }
            }
            return records;
        }
    }
}
