using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers info &lt;folder|hub id&gt;</c>: the pipeline class, each component's library and class, and for
/// each model its parameter count and dtypes (read from the weight file headers, nothing loaded) and its config.
/// </summary>
public static class InfoCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var model = new Argument<string>("model") { Description = "Pipeline or model folder, or Hub id (from the local cache; nothing is downloaded)" };
        var cmd = new Command("info", "Show a pipeline's components, classes, parameter counts, dtypes and configs") { model };
        cmd.SetAction(pr => Execute(ctx, pr.GetValue(model)!));
        return cmd;
    }

    /// <summary>Prints what the pipeline folder or Hub id <paramref name="idOrPath"/> holds; returns the exit code.</summary>
    public static int Execute(CliContext ctx, string idOrPath)
    {
        var o = ctx.Out;
        // the cache only, as the help says: a Hub id that is not cached is an error naming `diffusers download`
        string folder = PipelinePaths.Resolve(idOrPath, new LoadOptions { LocalFilesOnly = true });
        if (!File.Exists(Path.Combine(folder, PipelineIndex.FileName)) && File.Exists(Path.Combine(folder, "config.json")))
        {
            // a model folder (unet/, vae/, …): its class, weights and config
            using (var cfg = ConfigJson.ReadObject(Path.Combine(folder, "config.json")))
            {
                string cls = cfg.RootElement.TryGetProperty("_class_name", out var c) && c.ValueKind == System.Text.Json.JsonValueKind.String
                    ? c.GetString()! : "(no _class_name)";
                o.WriteLine($"{Printable.Text(cls)}  ({folder})");
            }
            DescribeFolder(o, folder);
            return CliApp.Ok;
        }
        string index = PipelinePaths.ModelIndex(folder);
        var pipelineIndex = PipelineIndex.Read(index);
        o.WriteLine($"{Printable.Text(pipelineIndex.ClassName)}  ({folder})");
        foreach (var (key, value) in pipelineIndex.Options)
            if (!key.StartsWith('_')) o.WriteLine($"  {Printable.Text(key)}: {Compact(value)}");
        foreach (var component in pipelineIndex.Components)
        {
            o.WriteLine();
            if (component.IsEmpty)
            {
                o.WriteLine($"{component.Name}: (none)");
                continue;
            }
            o.WriteLine($"{component.Name}: {Printable.Text(component.ClassName)} ({Printable.Text(component.Library)})");
            string sub = Path.Combine(folder, component.Name);
            if (!Directory.Exists(sub))
            {
                o.WriteLine($"  (folder {sub} missing)");
                continue;
            }
            DescribeFolder(o, sub);
        }
        return CliApp.Ok;
    }

    /// <summary>A component or model folder's weights and configs.</summary>
    private static void DescribeFolder(TextWriter o, string sub)
    {
        DescribeWeights(o, sub);
        foreach (var cfgName in new[] { "config.json", "scheduler_config.json", "tokenizer_config.json" })
        {
            string cfg = Path.Combine(sub, cfgName);
            if (!File.Exists(cfg)) continue;
            using var c = ConfigJson.ReadObject(cfg);
            o.WriteLine($"  {cfgName}:");
            foreach (var kv in c.RootElement.EnumerateObject())
                o.WriteLine($"    {Printable.Text(kv.Name)}: {Compact(kv.Value)}");
        }
    }

    private static void DescribeWeights(TextWriter o, string sub)
    {
        var files = Directory.GetFiles(sub, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            files = Directory.GetFiles(sub, "*.bin").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        foreach (var f in files)
        {
            var entries = new List<(string DType, long Count)>();
            if (f.EndsWith(".safetensors", StringComparison.Ordinal))
            {
                using var st = SafetensorsFile.Open(f);
                entries.AddRange(st.Entries.Values.Select(e => (e.DType, e.Shape.Aggregate(1L, (a, b) => a * b))));
            }
            else
            {
                // a pickle has no header to read: load it (through the allow-listed unpickler) and count
                var tensors = WeightLoader.ReadFile(f);
                try
                {
                    entries.AddRange(tensors.Values.Select(t => (SafetensorsFile.FromScalarType(t.dtype), t.numel())));
                }
                finally
                {
                    foreach (var t in tensors.Values) t.Dispose();
                }
            }
            long count = entries.Sum(e => e.Count);
            var dtypes = entries.GroupBy(e => e.DType).OrderBy(g => g.Key, StringComparer.Ordinal)
                .Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Key} {g.Sum(e => e.Count):N0}"));
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  weights: {Path.GetFileName(f)}: {entries.Count} tensors, {count:N0} parameters ({FormatCount(count)}), dtypes {string.Join(", ", dtypes)}"));
        }
    }

    private static string Compact(System.Text.Json.JsonElement e) => System.Text.Json.JsonSerializer.Serialize(e);

    private static string FormatCount(long n) => n switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e9:0.00}B"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e6:0.00}M"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e3:0.0}K"),
        _ => n.ToString(CultureInfo.InvariantCulture),
    };
}
