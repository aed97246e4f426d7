using System.Text.Json;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// golden <c>schedulers2/</c> (the real diffusers 0.25.1 on torch 1.13.1; its README and make.py): IPNDM, DDIM inverse
/// and consistency-model cases, each its config, diffusers' full effective config, the timesteps (and sigmas, IPNDM's
/// betas / alphas) for several step counts, and a loop with the fake model <c>0.1 · scale_model_input(x, t) + E</c>
/// (and the generator's draws where the class draws noise).
/// </summary>
internal static class Schedulers2Golden
{
    private const string Folder = "schedulers2";
    private static readonly Lazy<JsonDocument> DocFile = new(() => Golden.Json(Folder + "/cases.json"));

    /// <summary>The whole index (cases.json).</summary>
    public static JsonElement Doc => DocFile.Value.RootElement;

    public static JsonElement Case(string name) => Doc.GetProperty("cases").GetProperty(name);

    public static Tensor T(string key) => Golden.Tensor(Folder + "/cases.safetensors", key);

    public static bool Has(string name, string key)
    {
        using var f = Golden.Open(Folder + "/cases.safetensors");
        return f.Keys.Contains($"{name}/{key}");
    }

    /// <summary>The cases of <paramref name="className"/>.</summary>
    public static TheoryData<string> CasesOf(string className)
    {
        var data = new TheoryData<string>();
        foreach (var c in Doc.GetProperty("cases").EnumerateObject())
            if (c.Value.GetProperty("class").GetString() == className) data.Add(c.Name);
        return data;
    }

    /// <summary><c>Cls(**kwargs)</c> of the case, built from its config JSON as a pipeline's loader builds it.</summary>
    public static SchedulerBase Create(string name) =>
        SchedulerFactory.FromJson(Case(name).GetProperty("config").GetRawText(), $"golden case {name}");

    /// <summary>Every key of diffusers' effective config of the case equals ours (the defaults included).</summary>
    public static void AssertFullConfig(string name, SchedulerBase s)
    {
        var ours = SchedulerConfigs.ToJsonObject(s.Config);
        foreach (var kv in Case(name).GetProperty("full_config").EnumerateObject())
        {
            Assert.True(ours.ContainsKey(kv.Name), $"{name}: our config has no key {kv.Name}");
            using var expected = JsonDocument.Parse(kv.Value.GetRawText());
            // a non-finite float is a marked string until ConfigJson writes it as Python's bare -Infinity
            using var actual = JsonDocument.Parse((ours[kv.Name]?.ToJsonString() ?? "null").Replace("\\u0000", "", StringComparison.Ordinal));
            Assert.True(JsonElement.DeepEquals(expected.RootElement, actual.RootElement),
                $"{name}: {kv.Name} is {actual.RootElement.GetRawText()}, diffusers' {expected.RootElement.GetRawText()}");
        }
        var keys = Case(name).GetProperty("full_config").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal);
        Assert.Equal(keys, SchedulerConfigs.KnownKeys(s.Config.GetType()).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// <paramref name="actual"/> equals <paramref name="expected"/> (shape, dtype) with every value at most
    /// <paramref name="maxUlps"/> representable numbers of its dtype away (0: bit-exact).
    /// </summary>
    public static void AssertUlps(Tensor actual, Tensor expected, int maxUlps, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        using var scope = torch.NewDisposeScope();
        long worst = 0;
        if (expected.dtype == ScalarType.Float32)
        {
            var a = actual.cpu().data<float>().ToArray();
            var e = expected.data<float>().ToArray();
            for (int i = 0; i < e.Length; i++) worst = Math.Max(worst, Math.Abs((long)Ordered(a[i]) - Ordered(e[i])));
        }
        else if (expected.dtype == ScalarType.Float64)
        {
            var a = actual.cpu().data<double>().ToArray();
            var e = expected.data<double>().ToArray();
            for (int i = 0; i < e.Length; i++) worst = Math.Max(worst, (long)Math.Min(long.MaxValue, Math.Abs((decimal)Ordered(a[i]) - Ordered(e[i]))));
        }
        else
        {
            Assert.Equal(expected.data<long>().ToArray(), actual.cpu().data<long>().ToArray());
            return;
        }
        Assert.True(worst <= maxUlps, $"{what}: a value is {worst} ulps from diffusers' (at most {maxUlps} allowed)");
    }

    private static int Ordered(float f)
    {
        int b = BitConverter.SingleToInt32Bits(f);
        return b < 0 ? int.MinValue - b : b;
    }

    private static long Ordered(double d)
    {
        long b = BitConverter.DoubleToInt64Bits(d);
        return b < 0 ? long.MinValue - b : b;
    }

    /// <summary>
    /// Runs the case's loop on <paramref name="s"/> (its timesteps compared within <paramref name="timestepUlps"/>) and
    /// compares every scale_model_input, model output, prev_sample and pred_original_sample within
    /// <see cref="Tol.SchedulerRel"/>; <paramref name="options"/> carries the generator or the replayed noise. Returns the
    /// steps run.
    /// </summary>
    public static int RunLoop(string name, SchedulerBase s, StepOptions options, int timestepUlps)
    {
        using var scope = torch.NewDisposeScope();
        var loop = Case(name).GetProperty("loop");
        if (loop.GetProperty("custom_timesteps").ValueKind == JsonValueKind.Array)
            s.SetTimesteps(loop.GetProperty("custom_timesteps").EnumerateArray().Select(e => e.GetInt64()).ToList());
        else
            s.SetTimesteps(loop.GetProperty("num_inference_steps").GetInt32());
        AssertUlps(s.Timesteps, T($"{name}/loop/timesteps"), timestepUlps, $"{name} loop/timesteps");
        Assert.Equal(Case(name).GetProperty("init_noise_sigma").GetDouble(), s.InitNoiseSigma);
        var e = T("inputs/E");
        var sample = T("inputs/init_randn") * s.InitNoiseSigma;
        SchedulerGoldenTests.Rel(sample, T($"{name}/loop/x_T"), $"{name} x_T");
        var scaledExp = T($"{name}/loop/scaled_model_input");
        var outExp = T($"{name}/loop/model_output");
        var prevExp = T($"{name}/loop/prev_sample");
        var x0Exp = Has(name, "loop/pred_original_sample") ? T($"{name}/loop/pred_original_sample") : null;
        var ts = s.TimestepValues;
        Assert.Equal(prevExp.shape[0], ts.Length);
        for (int i = 0; i < ts.Length; i++)
        {
            var scaled = s.ScaleModelInput(sample, ts[i]);
            SchedulerGoldenTests.Rel(scaled, scaledExp[i], $"{name} step {i} scaled_model_input");
            var modelOutput = 0.1 * scaled + e;
            var output = s.Step(modelOutput, ts[i], sample, options);
            sample = output.PrevSample;
            SchedulerGoldenTests.Rel(sample, prevExp[i], $"{name} step {i} prev_sample");
            if (x0Exp is not null)
            {
                Assert.NotNull(output.PredOriginalSample);
                SchedulerGoldenTests.Rel(output.PredOriginalSample!, x0Exp[i], $"{name} step {i} pred_original_sample");
            }
        }
        return ts.Length;
    }
}
