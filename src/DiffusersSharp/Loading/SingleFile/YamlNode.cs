using System.Globalization;
using System.Text;

namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// The YAML of the original Stable Diffusion configs (<c>v1-inference.yaml</c>, <c>sd_xl_base.yaml</c>, …), read
/// as far as those files use YAML: block mappings and sequences (also a sequence at its key's indentation and
/// <c>- key: value</c> items), flow sequences and mappings (<c>[ 4, 2, 1 ]</c>, <c>{}</c>, over several lines too),
/// quoted and plain scalars, comments. Scalars stay text until asked for as a number or bool (PyYAML's spellings:
/// <c>1.e-6</c>, <c>True</c>, <c>null</c>, <c>~</c>). Anchors, tags, multi-line strings and multiple documents
/// are refused with the line. Errors name the file, the line and the key path.
/// </summary>
public sealed class YamlNode
{
    private readonly string? _scalar;
    private readonly List<KeyValuePair<string, YamlNode>>? _map;
    private readonly List<YamlNode>? _items;

    private YamlNode(string source, string path, int line, string? scalar, List<KeyValuePair<string, YamlNode>>? map, List<YamlNode>? items)
    {
        Source = source; PathInFile = path; Line = line; _scalar = scalar; _map = map; _items = items;
    }

    /// <summary>The file (or description) the node was read from.</summary>
    public string Source { get; }

    /// <summary>The node's key path, e.g. <c>model.params.unet_config.params.channel_mult</c>.</summary>
    public string PathInFile { get; }

    /// <summary>1-based line of the node in the file.</summary>
    public int Line { get; }

    /// <summary>True for a mapping (<c>key: value</c> children).</summary>
    public bool IsMap => _map is not null;
    /// <summary>True for a sequence (<c>- item</c> children).</summary>
    public bool IsSequence => _items is not null;
    /// <summary>True for a scalar (a text value or null).</summary>
    public bool IsScalar => _map is null && _items is null;
    /// <summary>True for an empty value or YAML's null spellings (<c>null</c>, <c>~</c>).</summary>
    public bool IsNull => IsScalar && (_scalar is null || _scalar is "null" or "Null" or "NULL" or "~");

    /// <summary>The child <paramref name="key"/> of a mapping; null when absent or when this is not a mapping.</summary>
    public YamlNode? this[string key] => _map?.FirstOrDefault(kv => kv.Key == key).Value;

    /// <summary>The keys of a mapping, in file order.</summary>
    public IEnumerable<string> Keys => _map?.Select(kv => kv.Key) ?? [];

    /// <summary>The items of a sequence (empty for other nodes).</summary>
    public IReadOnlyList<YamlNode> Items => _items ?? [];

    /// <summary>The child <paramref name="key"/>, or an error naming the file and the missing key.</summary>
    public YamlNode Require(string key) =>
        this[key] ?? throw new ConfigException($"{Source}: line {Line}: '{(PathInFile.Length == 0 ? "(top level)" : PathInFile)}' has no '{key}'")
        { FilePath = Source, Key = Join(PathInFile, key) };

    /// <summary>Follows a dotted path of keys (<c>"model.params.scale_factor"</c>); null when any part is absent.</summary>
    public YamlNode? At(string dottedPath)
    {
        YamlNode? node = this;
        foreach (var part in dottedPath.Split('.'))
            node = node?[part];
        return node;
    }

    /// <summary>The scalar's text; any other node is an error naming the file and path.</summary>
    public string AsString() => IsScalar && !IsNull ? _scalar! : throw Error("is not a text value");

    /// <summary>The scalar as an integer; anything else is an error naming the file and path.</summary>
    public int AsInt() =>
        IsScalar && int.TryParse(_scalar, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) ? v : throw Error("is not an integer");

    /// <summary>
    /// The scalar as a number (<c>1.0e-4</c>, <c>0.18215</c>); anything else is an error naming the
    /// file and path.
    /// </summary>
    public double AsDouble() =>
        IsScalar && double.TryParse(_scalar, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : throw Error("is not a number");

    /// <summary>
    /// The scalar as a boolean (PyYAML's <c>true</c>/<c>False</c>/<c>yes</c>/<c>off</c>, ...); anything else is an error naming
    /// the file and path.
    /// </summary>
    public bool AsBool() => _scalar switch
    {
        "true" or "True" or "TRUE" or "yes" or "Yes" or "on" or "On" => true,
        "false" or "False" or "FALSE" or "no" or "No" or "off" or "Off" => false,
        _ => throw Error("is not true or false"),
    };

    /// <summary>An integer list; a single integer is a list of one (the configs write <c>transformer_depth: 1</c> or <c>[1, 2, 10]</c>).</summary>
    public int[] AsIntList() => IsSequence ? Items.Select(i => i.AsInt()).ToArray() : [AsInt()];

    /// <summary>An error about this node: the file, line, key path and what is wrong.</summary>
    public ConfigException Error(string what) =>
        new($"{Source}: line {Line}: '{PathInFile}' {what}{(IsScalar && _scalar is not null ? $" (value '{_scalar}')" : "")}")
        { FilePath = Source, Key = PathInFile };

    /// <inheritdoc/>
    public override string ToString() => IsScalar ? _scalar ?? "null" : IsMap ? $"{{{_map!.Count} keys}}" : $"[{_items!.Count} items]";

    /// <summary>Reads a YAML file.</summary>
    public static YamlNode Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"Config file not found: {path}") { FilePath = path };
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses YAML text; <paramref name="source"/> names it in errors.</summary>
    public static YamlNode Parse(string text, string source) => new Parser(text, source).ParseDocument();

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private sealed record SourceLine(int Number, int Indent, string Text);

    private sealed class Parser
    {
        private readonly string _source;
        private readonly List<SourceLine> _lines = [];
        private int _i;

        public Parser(string text, string source)
        {
            _source = source;
            var raw = text.Replace("\r\n", "\n").Split('\n');
            bool started = false;
            for (int n = 0; n < raw.Length; n++)
            {
                string line = StripComment(raw[n]).TrimEnd();
                if (line.Trim().Length == 0) continue;
                if (line == "---" && !started) { started = true; continue; }
                if (line is "---" or "...") throw Fail(n + 1, "holds a second YAML document; only one is read");
                started = true;
                int indent = line.Length - line.TrimStart(' ').Length;
                if (line[indent] == '\t') throw Fail(n + 1, "indents with a tab");
                _lines.Add(new SourceLine(n + 1, indent, line[indent..]));
            }
        }

        private ConfigException Fail(int line, string what) =>
            new($"{_source}: line {line}: {what}") { FilePath = _source };

        public YamlNode ParseDocument()
        {
            if (_lines.Count == 0) return new YamlNode(_source, "", 1, null, null, null);
            var root = ParseBlock(_lines[0].Indent, "");
            if (_i < _lines.Count) throw Fail(_lines[_i].Number, $"unexpected indentation of '{_lines[_i].Text}'");
            return root;
        }

        private static bool IsItem(string text) => text == "-" || text.StartsWith("- ", StringComparison.Ordinal);

        /// <summary>A block under a key: its line is the key's (<paramref name="keyLine"/>), for messages.</summary>
        private YamlNode ParseBlock(int indent, string path, int? keyLine = null) =>
            IsItem(_lines[_i].Text) ? ParseSequence(indent, path, keyLine) : ParseMap(indent, path, keyLine);

        private YamlNode ParseMap(int indent, string path, int? keyLine = null)
        {
            var map = new List<KeyValuePair<string, YamlNode>>();
            int first = keyLine ?? _lines[_i].Number;
            while (_i < _lines.Count && _lines[_i].Indent == indent && !IsItem(_lines[_i].Text))
            {
                var line = _lines[_i++];
                var (key, rest) = SplitKey(line);
                string childPath = Join(path, key);
                if (map.Any(kv => kv.Key == key)) throw Fail(line.Number, $"key '{childPath}' appears twice");
                YamlNode value;
                if (rest.Length > 0) value = Inline(rest, line, childPath);
                else if (_i < _lines.Count && _lines[_i].Indent > indent) value = ParseBlock(_lines[_i].Indent, childPath, line.Number);
                else if (_i < _lines.Count && _lines[_i].Indent == indent && IsItem(_lines[_i].Text)) value = ParseSequence(indent, childPath, line.Number);
                else value = new YamlNode(_source, childPath, line.Number, null, null, null);
                map.Add(new(key, value));
            }
            if (_i < _lines.Count && _lines[_i].Indent > indent)
                throw Fail(_lines[_i].Number, $"unexpected indentation of '{_lines[_i].Text}'");
            return new YamlNode(_source, path, first, null, map, null);
        }

        private YamlNode ParseSequence(int indent, string path, int? keyLine = null)
        {
            var items = new List<YamlNode>();
            int first = keyLine ?? _lines[_i].Number;
            while (_i < _lines.Count && _lines[_i].Indent == indent && IsItem(_lines[_i].Text))
            {
                var line = _lines[_i];
                string itemPath = $"{path}[{items.Count}]";
                string content = line.Text.Length > 1 ? line.Text[2..] : "";
                int offset = content.Length - content.TrimStart(' ').Length;
                content = content.TrimStart(' ');
                if (content.Length == 0)
                {
                    _i++;
                    items.Add(_i < _lines.Count && _lines[_i].Indent > indent
                        ? ParseBlock(_lines[_i].Indent, itemPath)
                        : new YamlNode(_source, itemPath, line.Number, null, null, null));
                }
                else if (LooksLikeKey(content))
                {
                    // "- key: value": a mapping whose first key sits on the dash line, the others below it.
                    int column = indent + 2 + offset;
                    _lines[_i] = new SourceLine(line.Number, column, content);
                    items.Add(ParseMap(column, itemPath));
                }
                else
                {
                    _i++;
                    items.Add(Inline(content, line, itemPath));
                }
            }
            return new YamlNode(_source, path, first, null, null, items);
        }

        private (string Key, string Value) SplitKey(SourceLine line)
        {
            string t = line.Text;
            int colon;
            string key;
            if (t[0] is '"' or '\'')
            {
                int end = t.IndexOf(t[0], 1);
                if (end < 0) throw Fail(line.Number, $"unterminated quoted key in '{t}'");
                key = t[1..end];
                colon = end + 1;
                if (colon >= t.Length || t[colon] != ':') throw Fail(line.Number, $"expected 'key: value', got '{t}'");
            }
            else
            {
                colon = KeyColon(t);
                if (colon < 0) throw Fail(line.Number, $"expected 'key: value', got '{t}'");
                key = t[..colon].TrimEnd();
            }
            if (key.StartsWith('&') || key.StartsWith('*') || key.StartsWith('!') || key.StartsWith('?'))
                throw Fail(line.Number, $"uses YAML anchors, aliases, tags or complex keys ('{key}'), which these configs do not need");
            return (key, t[(colon + 1)..].Trim());
        }

        private static int KeyColon(string t)
        {
            for (int i = 0; i < t.Length; i++)
                if (t[i] == ':' && (i + 1 == t.Length || t[i + 1] == ' ')) return i;
                else if (t[i] is '[' or '{' or '"' or '\'') return -1;
            return -1;
        }

        private static bool LooksLikeKey(string content) =>
            content[0] is '"' or '\'' ? content.IndexOf(content[0], 1) is int e && e > 0 && e + 1 < content.Length && content[e + 1] == ':'
            : KeyColon(content) > 0;

        /// <summary>A value on the key's line: a flow collection (continued on following lines until balanced) or a scalar.</summary>
        private YamlNode Inline(string text, SourceLine line, string path)
        {
            if (text[0] is '[' or '{')
            {
                var sb = new StringBuilder(text);
                while (Depth(sb.ToString()) > 0)
                {
                    if (_i >= _lines.Count) throw Fail(line.Number, $"unclosed '{text[0]}' in '{path}'");
                    sb.Append(' ').Append(_lines[_i++].Text);
                }
                int pos = 0;
                var node = Flow(sb.ToString(), ref pos, line.Number, path);
                if (sb.ToString()[pos..].Trim().Length > 0) throw Fail(line.Number, $"unexpected text after the value of '{path}'");
                return node;
            }
            if (text[0] is '|' or '>' or '&' or '*' or '!')
                throw Fail(line.Number, $"'{path}' uses a block scalar, anchor, alias or tag ('{text}'), which these configs do not need");
            return new YamlNode(_source, path, line.Number, Unquote(text, line.Number), null, null);
        }

        private YamlNode Flow(string s, ref int pos, int line, string path)
        {
            while (pos < s.Length && s[pos] == ' ') pos++;
            if (pos >= s.Length) throw Fail(line, $"'{path}' ends early");
            if (s[pos] == '[' || s[pos] == '{')
            {
                bool isMap = s[pos] == '{';
                char close = isMap ? '}' : ']';
                pos++;
                var items = new List<YamlNode>();
                var map = new List<KeyValuePair<string, YamlNode>>();
                while (true)
                {
                    while (pos < s.Length && s[pos] == ' ') pos++;
                    if (pos < s.Length && s[pos] == close) { pos++; break; }
                    if (isMap)
                    {
                        int colon = s.IndexOf(':', pos);
                        if (colon < 0) throw Fail(line, $"expected 'key: value' in the mapping of '{path}'");
                        string key = Unquote(s[pos..colon].Trim(), line) ?? throw Fail(line, $"empty key in the mapping of '{path}'");
                        pos = colon + 1;
                        map.Add(new(key, Flow(s, ref pos, line, Join(path, key))));
                    }
                    else items.Add(Flow(s, ref pos, line, $"{path}[{items.Count}]"));
                    while (pos < s.Length && s[pos] == ' ') pos++;
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == close) { pos++; break; }
                    throw Fail(line, $"expected ',' or '{close}' in '{path}'");
                }
                return isMap ? new YamlNode(_source, path, line, null, map, null) : new YamlNode(_source, path, line, null, null, items);
            }
            int start = pos;
            if (s[pos] is '"' or '\'')
            {
                int end = s.IndexOf(s[pos], pos + 1);
                if (end < 0) throw Fail(line, $"unterminated string in '{path}'");
                pos = end + 1;
            }
            else
                while (pos < s.Length && s[pos] is not (',' or ']' or '}')) pos++;
            return new YamlNode(_source, path, line, Unquote(s[start..pos].Trim(), line), null, null);
        }

        private static int Depth(string s)
        {
            int depth = 0;
            char quote = '\0';
            foreach (char c in s)
            {
                if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
                if (c is '"' or '\'') quote = c;
                else if (c is '[' or '{') depth++;
                else if (c is ']' or '}') depth--;
            }
            return depth;
        }

        private string? Unquote(string text, int line)
        {
            if (text.Length == 0) return null;
            if (text[0] is '"' or '\'')
            {
                if (text.Length < 2 || text[^1] != text[0]) throw Fail(line, $"unterminated string {text}");
                return text[1..^1];
            }
            return text;
        }

        private static string StripComment(string line)
        {
            char quote = '\0';
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
                if (c is '"' or '\'' && (i == 0 || line[i - 1] is ' ' or '[' or ',' or ':' or '{' or '-')) quote = c;
                else if (c == '#' && (i == 0 || line[i - 1] is ' ' or '\t')) return line[..i];
            }
            return line;
        }
    }
}
