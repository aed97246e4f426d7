using System.Text.Json;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The cases of golden/schedulers.json (README section B), and of the transcript files in <see cref="Sources"/> made in
/// its format, and how to drive each class through them. A case id is the case name for golden B and
/// <c>folder:case</c> for the others. Every case maps to its diffusers class through <see cref="SchedulerFactory"/>; a
/// case whose class is not implemented yet must be listed in <see cref="NotYetImplemented"/> (and a class listed there
/// must not be registered), so no case passes silently by being skipped.
/// </summary>
public static class SchedulerGoldenCases
{
    public const string File = "schedulers.safetensors";

    /// <summary>Classes of golden cases that are not implemented yet. Empty this list as they land.</summary>
    public static readonly IReadOnlySet<string> NotYetImplemented = new HashSet<string>
    {
    };

    /// <summary>
    /// The golden files in this format: golden B (case ids without a prefix) and the numpy transcriptions of diffusers
    /// 0.25.1 that extend it (ids <c>Prefix:case</c>; each folder's README says how it was made and validated).
    /// </summary>
    private static readonly GoldenSource[] Sources =
    [
        new("", "schedulers.json", File),
        new("scheduler-transcripts-vp", "scheduler-transcripts-vp/cases.json", "scheduler-transcripts-vp/cases.safetensors"),
        new("scheduler-transcripts-sigma", "scheduler-transcripts-sigma/transcripts.json",
            "scheduler-transcripts-sigma/transcripts.safetensors"),
    ];

    private sealed record GoldenSource(string Prefix, string JsonFile, string TensorFile)
    {
        private readonly Lazy<JsonDocument> _json = new(() => Golden.Json(JsonFile));

        public JsonElement Cases => _json.Value.RootElement.GetProperty("cases");

        public string Id(string name) => Prefix.Length == 0 ? name : $"{Prefix}:{name}";
    }

    /// <summary>The file of a case id and the case's name in it.</summary>
    private static (GoldenSource Source, string Name) Resolve(string id)
    {
        int colon = id.IndexOf(':');
        if (colon < 0) return (Sources[0], id);
        string prefix = id[..colon];
        var source = Sources.FirstOrDefault(s => s.Prefix == prefix)
                     ?? throw new ArgumentException($"case {id}: no golden scheduler file has the prefix {prefix}");
        return (source, id[(colon + 1)..]);
    }

    public static JsonElement Case(string id)
    {
        var (source, name) = Resolve(id);
        return source.Cases.GetProperty(name);
    }

    public static string ClassOf(string name) => Case(name).GetProperty("class").GetString()!;

    public static IEnumerable<string> AllCaseNames =>
        Sources.SelectMany(s => s.Cases.EnumerateObject().Select(p => s.Id(p.Name)));

    /// <summary>Theory data: the cases whose class is implemented.</summary>
    public static TheoryData<string> Implemented()
    {
        var data = new TheoryData<string>();
        foreach (var n in AllCaseNames)
            if (!NotYetImplemented.Contains(ClassOf(n))) data.Add(n);
        return data;
    }

    /// <summary>s0 = Cls(**config): built from the case's full effective config (with its _use_default_values).</summary>
    public static SchedulerBase Create(string name) =>
        SchedulerFactory.FromJson(Case(name).GetProperty("config").GetRawText(), $"golden scheduler case {name}");

    public static Tensor T(string id, string key)
    {
        var (source, name) = Resolve(id);
        return Golden.Tensor(source.TensorFile, $"{name}/{key}");
    }

    public static bool Has(string id, string key)
    {
        var (_, name) = Resolve(id);
        return Case(id).GetProperty("tensors").TryGetProperty($"{name}/{key}", out _);
    }

    /// <summary>
    /// The case's step kwargs (diffusers' <c>step(..., **step_kwargs)</c>) on top of <paramref name="options"/> (the
    /// generator or the recorded noise); a kwarg this test does not map fails the case rather than being ignored.
    /// </summary>
    public static StepOptions StepOptionsOf(string name, StepOptions options)
    {
        foreach (var kw in Case(name).GetProperty("step_kwargs").EnumerateObject())
        {
            options = kw.Name switch
            {
                "eta" => options with { Eta = kw.Value.GetDouble() },
                "use_clipped_model_output" => options with { UseClippedModelOutput = kw.Value.GetBoolean() },
                "s_churn" => options with { SChurn = kw.Value.GetDouble() },
                "s_tmin" => options with { STmin = kw.Value.GetDouble() },
                "s_tmax" => options with { STmax = kw.Value.GetDouble() },
                "s_noise" => options with { SNoise = kw.Value.GetDouble() },
                "order" => options with { Order = kw.Value.GetInt32() },
                _ => throw new InvalidOperationException($"case {name} passes step kwarg {kw.Name}, which StepOptionsOf does not map"),
            };
        }
        return options;
    }

    public static void SetLoopTimesteps(string name, SchedulerBase s)
    {
        var c = Case(name);
        if (c.GetProperty("custom_timesteps").ValueKind == JsonValueKind.Array)
            s.SetTimesteps(c.GetProperty("custom_timesteps").EnumerateArray().Select(e => e.GetInt64()).ToList());
        else
            s.SetTimesteps(c.GetProperty("loop_num_inference_steps").GetInt32());
    }

    public static ulong? GeneratorSeed(string name) =>
        Case(name).GetProperty("generator_seed") is { ValueKind: JsonValueKind.Number } e ? e.GetUInt64() : null;
}
