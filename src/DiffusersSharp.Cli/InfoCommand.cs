using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers info &lt;folder|hub id&gt;</c>: the pipeline class, each component's library and class, and for
/// each model its parameter count and dtypes (read from the weight file headers, nothing loaded) and its config.
/// </summary>
public static class InfoCommand
{
    public static Command Create(CliContext ctx)
    {
        var model = new Argument<string>("model") { Description = "Pipeline folder or Hub id (from the local cache)" };
        var cmd = new Command("info", "Show a pipeline's components, classes, parameter counts, dtypes and configs") { model };
        cmd.SetAction(pr => Execute(ctx, pr.GetValue(model)!));
        return cmd;
    }

    public static int Execute(CliContext ctx, string idOrPath)
    {
        var o = ctx.Out;
        string folder = PipelinePaths.Resolve(idOrPath);
        string index = PipelinePaths.ModelIndex(folder);
        string className = DiffusionPipeline.ReadClassName(index);
        o.WriteLine($"{className}  ({folder})");
        using var doc = ConfigJson.ReadDocument(index);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name.StartsWith('_')) continue;
            if (prop.Value.ValueKind != JsonValueKind.Array || prop.Value.GetArrayLength() != 2)
            {
                o.WriteLine($"  {prop.Name}: {prop.Value.GetRawText()}");
                continue;
            }
            string lib = prop.Value[0].ToString(), cls = prop.Value[1].ToString();
            o.WriteLine();
            o.WriteLine($"{prop.Name}: {cls} ({lib})");
            string sub = Path.Combine(folder, prop.Name);
            if (!Directory.Exists(sub))
            {
                o.WriteLine($"  (folder {sub} missing)");
                continue;
            }
            DescribeWeights(o, sub);
            foreach (var cfgName in new[] { "config.json", "scheduler_config.json", "tokenizer_config.json" })
            {
                string cfg = Path.Combine(sub, cfgName);
                if (!File.Exists(cfg)) continue;
                using var c = ConfigJson.ReadDocument(cfg);
                o.WriteLine($"  {cfgName}:");
                foreach (var kv in c.RootElement.EnumerateObject())
                    o.WriteLine($"    {kv.Name}: {kv.Value.GetRawText()}");
            }
        }
        return CliApp.Ok;
    }

    private static void DescribeWeights(TextWriter o, string sub)
    {
        var files = Directory.GetFiles(sub, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
        {
            var bins = Directory.GetFiles(sub, "*.bin");
            if (bins.Length > 0)
                o.WriteLine($"  weights: {string.Join(", ", bins.Select(Path.GetFileName))} (pickle; no safetensors header to summarise)");
            return;
        }
        foreach (var f in files)
        {
            using var st = SafetensorsFile.Open(f);
            long count = 0;
            var dtypes = new SortedDictionary<string, long>(StringComparer.Ordinal);
            foreach (var e in st.Entries.Values)
            {
                long n = e.Shape.Aggregate(1L, (a, b) => a * b);
                count += n;
                dtypes[e.DType] = dtypes.GetValueOrDefault(e.DType) + n;
            }
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  weights: {Path.GetFileName(f)}: {st.Entries.Count} tensors, {count:N0} parameters ({FormatCount(count)}), " +
                $"dtypes {string.Join(", ", dtypes.Select(d => $"{d.Key} {d.Value:N0}"))}"));
        }
    }

    private static string FormatCount(long n) => n switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e9:0.00}B"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e6:0.00}M"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1e3:0.0}K"),
        _ => n.ToString(CultureInfo.InvariantCulture),
    };
}
