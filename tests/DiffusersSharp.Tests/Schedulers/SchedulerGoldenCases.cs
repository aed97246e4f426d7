using System.Text.Json;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The cases of golden/schedulers.json (README section B) and how to drive each class through them.
/// Every case maps to its diffusers class through <see cref="SchedulerFactory"/>; a case whose class is not
/// implemented yet must be listed in <see cref="NotYetImplemented"/> (and a class listed there must not be
/// registered), so no case passes silently by being skipped.
/// </summary>
public static class SchedulerGoldenCases
{
    public const string File = "schedulers.safetensors";

    /// <summary>Classes of golden cases that are not implemented yet. Empty this list as they land.</summary>
    public static readonly IReadOnlySet<string> NotYetImplemented = new HashSet<string>
    {
    };

    private static readonly Lazy<JsonDocument> _json = new(() => Golden.Json("schedulers.json"));

    public static JsonElement Cases => _json.Value.RootElement.GetProperty("cases");

    public static JsonElement Case(string name) => Cases.GetProperty(name);

    public static string ClassOf(string name) => Case(name).GetProperty("class").GetString()!;

    public static IEnumerable<string> AllCaseNames => Cases.EnumerateObject().Select(p => p.Name);

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
        SchedulerFactory.FromJson(Case(name).GetProperty("config").GetRawText(), $"schedulers.json case {name}");

    public static Tensor T(string name, string key) => Golden.Tensor(File, $"{name}/{key}");

    public static bool Has(string name, string key) =>
        Case(name).GetProperty("tensors").TryGetProperty($"{name}/{key}", out _);

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
