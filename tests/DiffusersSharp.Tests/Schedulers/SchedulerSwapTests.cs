using System.Text.Json;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Swapping schedulers as the tiny-sd golden runs did (<c>Cls.from_config(pipe.scheduler.config)</c> from the
/// saved PNDM config): the effective configs, timesteps and init_noise_sigma diffusers recorded.
/// </summary>
public class SchedulerSwapTests
{
    public static TheoryData<string> Runs => new() { "pndm_default", "ddim", "euler_ancestral", "dpmpp2m" };

    private static string Canon(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble().ToString("R"),
        JsonValueKind.String => e.GetString()!.TrimStart('\0') switch { "-Infinity" or "-inf" => "-inf", "Infinity" or "inf" => "inf", var v => "\"" + v + "\"" },
        _ => e.GetRawText(),
    };

    [Theory, MemberData(nameof(Runs))]
    public void FromConfigOfTheSavedPndmConfigMatchesDiffusers(string run)
    {
        using var doc = Golden.Json("tiny-sd-expected.json");
        var r = doc.RootElement.GetProperty("pipeline_runs").GetProperty(run);
        string cls = r.GetProperty("scheduler_class").GetString()!;
        using var pndm = PNDMScheduler.FromPretrained(Golden.Path("tiny-sd"));
        using var s = SchedulerFactory.FromConfig(cls, pndm.Config);
        Assert.Equal(cls, s.ClassName);

        // Every key the new class models has the value diffusers' from_config gave it.
        var ours = SchedulerConfigs.ToJsonObject(s.Config);
        foreach (var key in SchedulerConfigs.KnownKeys(s.Config.GetType()))
        {
            Assert.True(r.GetProperty("scheduler_config").TryGetProperty(key, out var expected), $"{run}: diffusers' config has no {key}");
            string exp = Canon(expected);
            string act = Canon(JsonDocument.Parse(ours[key]?.ToJsonString() ?? "null").RootElement);
            Assert.True(exp == act, $"{run}: {key} = {act}, diffusers {exp}");
        }

        s.SetTimesteps(5);
        using var ts = Golden.Tensor("tiny-sd-expected.safetensors", $"pipeline/{run}/timesteps");
        if (run != "pndm_default")   // the PNDM run records the strength-sliced copy; equal here as strength is 1
            SchedulerGoldenTests.AssertExact(s.Timesteps, ts, $"{run} timesteps");
        else
            Assert.Equal(ts.data<long>().ToArray(), s.Timesteps.data<long>().ToArray());
        Assert.Equal(r.GetProperty("init_noise_sigma").GetDouble(), s.InitNoiseSigma, 6);
    }
}
