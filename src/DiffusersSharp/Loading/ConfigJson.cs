using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Loading;

/// <summary>
/// Reads and writes diffusers' JSON configs with clear errors (file, line, column, key). Python's json
/// module writes non-finite floats as bare <c>Infinity</c>, <c>-Infinity</c>, <c>NaN</c>; those, and the
/// strings "inf", "-inf", "nan", are accepted for float keys. Non-finite values are written the way
/// Python writes them, so diffusers reads our files back.
/// </summary>
public static class ConfigJson
{
    public static readonly JsonSerializerOptions Options = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions
        {
            WriteIndented = true,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
            ReadCommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        };
        o.Converters.Add(new PythonDoubleConverter());
        o.Converters.Add(new PythonFloatConverter());
        return o;
    }

    /// <summary>Reads a config file into <typeparamref name="T"/>; absent keys keep the record's defaults.</summary>
    public static T Read<T>(string path) where T : DiffusersConfig
    {
        if (!File.Exists(path))
            throw new ConfigException($"Config file not found: {path}") { FilePath = path };
        return Parse<T>(File.ReadAllText(path), path);
    }

    /// <summary>Parses config JSON text; <paramref name="source"/> names the file in error messages.</summary>
    public static T Parse<T>(string json, string source) where T : DiffusersConfig
    {
        string normalized = NormalizePythonLiterals(json);
        try
        {
            return JsonSerializer.Deserialize<T>(normalized, Options)
                   ?? throw new ConfigException($"{source}: the config is JSON null") { FilePath = source };
        }
        catch (JsonException e)
        {
            string key = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "";
            string where = e.LineNumber is { } line ? $" (line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1})" : "";
            string msg = key.Length > 0
                ? $"{source}: config key '{key}' has a value of the wrong type or form for {typeof(T).Name}{where}: {e.Message}"
                : $"{source}: invalid JSON{where}: {e.Message}";
            throw new ConfigException(msg, e) { FilePath = source, Key = key.Length > 0 ? key : null };
        }
    }

    /// <summary>Reads any JSON file as a document, with the same error reporting.</summary>
    public static JsonDocument ReadDocument(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"Config file not found: {path}") { FilePath = path };
        try
        {
            return JsonDocument.Parse(NormalizePythonLiterals(File.ReadAllText(path)),
                new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is { } line ? $" (line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1})" : "";
            throw new ConfigException($"{path}: invalid JSON{where}: {e.Message}", e) { FilePath = path };
        }
    }

    public static string Serialize<T>(T config) where T : DiffusersConfig =>
        JsonSerializer.Serialize(config, Options);

    /// <summary>Writes the config (atomically: a temp file renamed over the target).</summary>
    public static void Write<T>(T config, string path) where T : DiffusersConfig
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, Serialize(config) + "\n");
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Turns bare Infinity / -Infinity / NaN tokens outside strings into JSON strings.</summary>
    internal static string NormalizePythonLiterals(string json)
    {
        if (!json.Contains("Infinity") && !json.Contains("NaN")) return json;
        var sb = new StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) { sb.Append(json[++i]); continue; }
                if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            if (Match(json, i, "-Infinity")) { sb.Append("\"-Infinity\""); i += 8; continue; }
            if (Match(json, i, "Infinity")) { sb.Append("\"Infinity\""); i += 7; continue; }
            if (Match(json, i, "NaN")) { sb.Append("\"NaN\""); i += 2; continue; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    private static bool Match(string s, int i, string token) =>
        string.CompareOrdinal(s, i, token, 0, token.Length) == 0;

    internal static double ParseNamedDouble(string s) => s.Trim().ToLowerInvariant() switch
    {
        "inf" or "+inf" or "infinity" or "+infinity" => double.PositiveInfinity,
        "-inf" or "-infinity" => double.NegativeInfinity,
        "nan" => double.NaN,
        _ => throw new JsonException($"'{s}' is not a number"),
    };

    /// <summary>Writes doubles as Python does: shortest round-trip form, non-finite as bare literals.</summary>
    private sealed class PythonDoubleConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType switch
            {
                JsonTokenType.Number => reader.GetDouble(),
                JsonTokenType.String => ParseNamedDouble(reader.GetString()!),
                _ => throw new JsonException($"expected a number, got {reader.TokenType}"),
            };

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsPositiveInfinity(value)) writer.WriteRawValue("Infinity", skipInputValidation: true);
            else if (double.IsNegativeInfinity(value)) writer.WriteRawValue("-Infinity", skipInputValidation: true);
            else if (double.IsNaN(value)) writer.WriteRawValue("NaN", skipInputValidation: true);
            else if (value == Math.Floor(value) && Math.Abs(value) < 1e16) writer.WriteRawValue(value.ToString("F1", System.Globalization.CultureInfo.InvariantCulture));
            else writer.WriteNumberValue(value);
        }
    }

    private sealed class PythonFloatConverter : JsonConverter<float>
    {
        public override float Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType switch
            {
                JsonTokenType.Number => reader.GetSingle(),
                JsonTokenType.String => (float)ParseNamedDouble(reader.GetString()!),
                _ => throw new JsonException($"expected a number, got {reader.TokenType}"),
            };

        public override void Write(Utf8JsonWriter writer, float value, JsonSerializerOptions options) =>
            new PythonDoubleConverter().Write(writer,
                float.IsFinite(value) ? double.Parse(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture) : value,
                options);
    }
}
