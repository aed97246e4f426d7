using System.Reflection;
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
    /// <summary>
    /// The serializer options every config is read and written with (Python's non-finite numbers, indented output).
    /// </summary>
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
        return Parse<T>(ReadText(path), path);
    }

    /// <summary>
    /// Parses config JSON text; <paramref name="source"/> names the file in error messages. A record marked
    /// <see cref="SubConfigAttribute"/> is read from its sub-object when the file is the composite config it names.
    /// </summary>
    public static T Parse<T>(string json, string source) where T : DiffusersConfig
    {
        string normalized = NormalizePythonLiterals(json);
        string keyPrefix = "";
        // Syntax first, so that a syntax error under a key is not reported as a wrong type for that key.
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(normalized, DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: invalid JSON{Where(e)}: {e.Message}", e) { FilePath = source };
        }
        using var _ = doc;
        RequireObject(doc, source);
        // the object the record is read from, which CheckJsonForm looks at too
        JsonElement form = doc.RootElement;
        if (SubConfig(typeof(T), doc.RootElement, source) is { } sub)
        {
            form = sub;
            normalized = sub.GetRawText();
            keyPrefix = typeof(T).GetCustomAttribute<SubConfigAttribute>()!.Key + ".";
        }
        try
        {
            var config = JsonSerializer.Deserialize<T>(normalized, Options)
                   ?? throw new ConfigException($"{source}: the config is JSON null") { FilePath = source };
            RefuseNumbersAsStrings(config, source, keyPrefix);
            config.CheckJsonForm(form, source);
            return config;
        }
        catch (JsonException e)
        {
            string inner = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "";
            string key = inner.Length > 0 ? keyPrefix + inner : "";
            string where = keyPrefix.Length > 0 ? "" : Where(e); // a line and column of the sub-object's text would mislead
            string? expected = inner.Length > 0 ? Expected(typeof(T), inner) : null;
            string msg = key.Length > 0
                ? $"{source}: config key '{key}' has a value of the wrong type or form for {typeof(T).Name}{where}: {(expected is null ? e.Message : "expected " + expected)}"
                : $"{source}: the config does not fit {typeof(T).Name}{where}: {e.Message}";
            throw new ConfigException(msg, e) { FilePath = source, Key = key.Length > 0 ? key : null };
        }
    }

    /// <summary>
    /// The sub-object to read a <see cref="SubConfigAttribute"/> record from when <paramref name="root"/> is the composite
    /// config it names (its <c>model_type</c>); null when the type has no such attribute or the file is not that composite.
    /// </summary>
    private static JsonElement? SubConfig(Type configType, JsonElement root, string source)
    {
        if (configType.GetCustomAttribute<SubConfigAttribute>() is not { } sub) return null;
        if (!root.TryGetProperty("model_type", out var type) || type.ValueKind != JsonValueKind.String
            || type.GetString() != sub.CompositeModelType)
            return null;
        if (!root.TryGetProperty(sub.Key, out var inner))
            throw new ConfigException(
                $"{source}: config key '{sub.Key}' is missing: model_type '{sub.CompositeModelType}' is a composite config, and {configType.Name} is read from its '{sub.Key}' object")
            { FilePath = source, Key = sub.Key };
        if (inner.ValueKind != JsonValueKind.Object)
            throw new ConfigException(
                $"{source}: config key '{sub.Key}' must be an object ({{\"key\": value, …}}), not {Describe(inner)}: model_type '{sub.CompositeModelType}' is a composite config, and {configType.Name} is read from its '{sub.Key}' object")
            { FilePath = source, Key = sub.Key };
        return inner.Clone();
    }

    /// <summary>
    /// A bare NaN / Infinity (which <see cref="NormalizePythonLiterals"/> turns into a marked string so that float keys
    /// read it) given for a string key is the wrong type, as any other number would be.
    /// </summary>
    private static void RefuseNumbersAsStrings(DiffusersConfig config, string source, string keyPrefix)
    {
        foreach (var p in config.GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (p.GetIndexParameters().Length != 0) continue;
            string?[]? value = p.PropertyType == typeof(string) ? [p.GetValue(config) as string]
                : p.PropertyType == typeof(string[]) ? p.GetValue(config) as string?[] : null;
            if (value?.FirstOrDefault(v => v is { Length: > 0 } && v[0] == '\0') is not { } bad) continue;
            string key = keyPrefix + ((p.GetCustomAttributes(typeof(JsonPropertyNameAttribute), true).FirstOrDefault() as JsonPropertyNameAttribute)?.Name ?? p.Name);
            throw new ConfigException($"{source}: config key '{key}' must be a string, not the number {bad[1..]}") { FilePath = source, Key = key };
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// A config file's text: UTF-8 (a BOM is skipped), as Python's <c>json.load</c> reads it; invalid bytes are an
    /// error naming the file, not silently replaced (a replaced key would be ignored as unknown).
    /// </summary>
    public static string ReadText(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Cannot read {path}: {e.Message}", e) { FilePath = path };
        }
        try
        {
            var span = bytes.AsSpan();
            if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
            return StrictUtf8.GetString(span);
        }
        catch (DecoderFallbackException e)
        {
            throw new ConfigException($"{path}: not valid UTF-8 text (byte {e.Index} of the file cannot be decoded)", e) { FilePath = path };
        }
    }

    /// <summary>What the config key takes, in words (from the record's property type), or null when unknown.</summary>
    private static string? Expected(Type configType, string key)
    {
        string name = key.Split('[', '.')[0];
        var prop = configType.GetProperties().FirstOrDefault(p =>
            (p.GetCustomAttributes(typeof(JsonPropertyNameAttribute), true).FirstOrDefault() as JsonPropertyNameAttribute)?.Name == name);
        if (prop is null) return null;
        string? converter = (prop.GetCustomAttributes(typeof(JsonConverterAttribute), true).FirstOrDefault() as JsonConverterAttribute)?.ConverterType?.Name;
        var t = Nullable.GetUnderlyingType(prop.PropertyType) ?? prop.PropertyType;
        string? what = converter switch
        {
            { } c when c.StartsWith("IntOrIntArray", StringComparison.Ordinal) => "an integer or a list of integers",
            { } c when c.StartsWith("BoolOrBoolArray", StringComparison.Ordinal) => "true, false or a list of them",
            { } c when c.StartsWith("TransformerLayersPerBlock", StringComparison.Ordinal) => "an integer, or a list of integers and lists of integers",
            { } c when c.StartsWith("ReverseTransformerLayers", StringComparison.Ordinal) => "a list of integers and lists of integers",
            _ when t == typeof(int) => "an integer (-2147483648 to 2147483647)",
            _ when t == typeof(long) => "an integer",
            _ when t == typeof(double) || t == typeof(float) => "a number",
            _ when t == typeof(bool) => "true or false",
            _ when t == typeof(string) => "a string",
            _ when t == typeof(int[]) => "a list of integers",
            _ when t == typeof(double[]) => "a list of numbers",
            _ when t == typeof(string[]) => "a list of strings",
            _ when t == typeof(int[][]) => "a list of lists of integers",
            _ => null,
        };
        if (what is null) return null;
        bool nullable = Nullable.GetUnderlyingType(prop.PropertyType) is not null
                        || new System.Reflection.NullabilityInfoContext().Create(prop).WriteState == System.Reflection.NullabilityState.Nullable;
        return nullable ? what + " or null" : what;
    }

    private static readonly JsonDocumentOptions DocumentOptions = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    private static string Where(JsonException e) =>
        e.LineNumber is { } line ? $" (line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1})" : "";

    /// <summary>Reads any JSON file as a document, with the same error reporting.</summary>
    public static JsonDocument ReadDocument(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"Config file not found: {path}") { FilePath = path };
        try
        {
            return JsonDocument.Parse(NormalizePythonLiterals(ReadText(path)), DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: invalid JSON{Where(e)}: {e.Message}", e) { FilePath = path };
        }
    }

    /// <summary>
    /// Reads a JSON file that must hold an object (every config file does): <c>null</c>, a list, a number or a
    /// string is a <see cref="ConfigException"/> naming the file.
    /// </summary>
    public static JsonDocument ReadObject(string path)
    {
        var doc = ReadDocument(path);
        try
        {
            RequireObject(doc, path);
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    private static void RequireObject(JsonDocument doc, string source)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ConfigException(
                $"{source}: the file must hold a JSON object ({{\"key\": value, …}}), not {Describe(doc.RootElement)}")
            { FilePath = source };
    }

    /// <summary>A JSON value's kind in words, with the value when it is short: <c>null</c>, <c>a list</c>, <c>the number 42</c>.</summary>
    internal static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "a list",
        JsonValueKind.Number => $"the number {Printable.Json(e, 40)}",
        JsonValueKind.String => $"the string {Printable.Json(e, 40)}",
        JsonValueKind.True or JsonValueKind.False => $"the value {Printable.Json(e)}",
        _ => "an object",
    };

    /// <summary>
    /// The config as JSON text the way Python writes it (non-finite floats as bare literals, also inside keys
    /// kept in <see cref="DiffusersConfig.Extra"/>).
    /// </summary>
    public static string Serialize<T>(T config) where T : DiffusersConfig =>
        JsonSerializer.Serialize(config, Options)
            .Replace("\"\\u0000-Infinity\"", "-Infinity")
            .Replace("\"\\u0000Infinity\"", "Infinity")
            .Replace("\"\\u0000NaN\"", "NaN");

    /// <summary>Writes the config (atomically: a temp file renamed over the target; a failure leaves it as it was).</summary>
    public static void Write<T>(T config, string path) where T : DiffusersConfig
    {
        string tmp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(tmp, Serialize(config) + "\n");
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new ConfigException($"Cannot write {path}: {e.Message}", e) { FilePath = path };
        }
    }

    /// <summary>
    /// Turns bare Infinity / -Infinity / NaN tokens outside strings into JSON strings marked with a leading
    /// NUL (<c>"\u0000Infinity"</c>), which float keys read as the number and <see cref="Serialize{T}"/> turns
    /// back into the bare literal, so unknown keys holding them round-trip as numbers.
    /// </summary>
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
            if (Match(json, i, "-Infinity")) { sb.Append("\"\\u0000-Infinity\""); i += 8; continue; }
            if (Match(json, i, "Infinity")) { sb.Append("\"\\u0000Infinity\""); i += 7; continue; }
            if (Match(json, i, "NaN")) { sb.Append("\"\\u0000NaN\""); i += 2; continue; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    private static bool Match(string s, int i, string token) =>
        string.CompareOrdinal(s, i, token, 0, token.Length) == 0;

    internal static double ParseNamedDouble(string s) => s.TrimStart('\0').Trim().ToLowerInvariant() switch
    {
        "inf" or "+inf" or "infinity" or "+infinity" => double.PositiveInfinity,
        "-inf" or "-infinity" => double.NegativeInfinity,
        "nan" => double.NaN,
        _ => throw new JsonException($"'{s}' is not a number"),
    };

    /// <summary>
    /// Python's <c>repr(float)</c> of a finite double: the shortest round-trip digits, fixed notation for
    /// decimal exponents -4…15 (<c>0.0001</c>, <c>1.0</c>, <c>1000000000000000.0</c>), else <c>1e-05</c>,
    /// <c>1.5e+16</c>.
    /// </summary>
    internal static string PythonRepr(double value)
    {
        if (value == 0) return double.IsNegative(value) ? "-0.0" : "0.0";
        string r = Math.Abs(value).ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        string digits;
        int exp10;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            digits = r[..e].Replace(".", "");
            exp10 = int.Parse(r[(e + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            int dot = r.IndexOf('.');
            string intPart = dot < 0 ? r : r[..dot], frac = dot < 0 ? "" : r[(dot + 1)..];
            if (intPart.TrimStart('0').Length > 0)
            {
                intPart = intPart.TrimStart('0');
                digits = intPart + frac;
                exp10 = intPart.Length - 1;
            }
            else
            {
                int zeros = frac.Length - frac.TrimStart('0').Length;
                digits = frac[zeros..];
                exp10 = -(zeros + 1);
            }
        }
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        string sign = value < 0 ? "-" : "";
        if (exp10 >= -4 && exp10 < 16)
        {
            if (exp10 < 0) return $"{sign}0.{new string('0', -exp10 - 1)}{digits}";
            string whole = digits.Length > exp10 + 1 ? digits[..(exp10 + 1)] : digits.PadRight(exp10 + 1, '0');
            string rest = digits.Length > exp10 + 1 ? digits[(exp10 + 1)..] : "0";
            return $"{sign}{whole}.{rest}";
        }
        string mantissa = digits.Length > 1 ? $"{digits[0]}.{digits[1..]}" : digits;
        return $"{sign}{mantissa}e{(exp10 < 0 ? "-" : "+")}{Math.Abs(exp10):D2}";
    }

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
            else writer.WriteRawValue(PythonRepr(value), skipInputValidation: true);
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
