using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Seeded fuzz cases through the library loaders: ConsistencyModelPipeline (tiny-consistency, through
/// <c>ConsistencyModelPipeline.FromPretrained</c>) and the configs of the new schedulers (IPNDM, DDIM inverse, DPM-Solver multistep inverse,
/// CMStochasticIterative), each loaded from a <c>scheduler_config.json</c> and stepped 3 times; also the new
/// scheduler classes through <c>generate --scheduler … --scheduler-config …</c> (<see cref="SchedulerOptions"/>).
/// </summary>
internal static class LoaderCases
{
    public const int Seed = 29;
    private const string Consistency = "tiny-consistency";

    /// <summary>The classes whose configs are fuzzed here.</summary>
    public static readonly string[] NewSchedulers = ["IPNDMScheduler", "DDIMInverseScheduler", "DPMSolverMultistepInverseScheduler", "CMStochasticIterativeScheduler"];

    /// <summary>ConsistencyModelPipeline.FromPretrained and a 2-step run with random class labels.</summary>
    private static torch.Tensor RunConsistency(FuzzWorkspace w)
    {
        using var pipe = ConsistencyModelPipeline.FromPretrained(w.Model);
        using var result = pipe.Generate(numInferenceSteps: 2, seed: 0, outputType: OutputType.Np);
        return result.Array!.clone();
    }

    public static IEnumerable<LoaderCase> ConsistencyFolders()
    {
        var rng = new Random(Seed);
        yield return new("tiny-consistency unchanged", Consistency, _ => { }, RunConsistency);
        IEnumerable<LoaderCase> Of(IEnumerable<(string Name, Action<FuzzWorkspace> Mutate, string[] Names)> m) =>
            m.Select(x => new LoaderCase($"{Consistency}: {x.Name}", Consistency, x.Mutate, RunConsistency) { Names = x.Names });
        foreach (var c in Of(NewModelCases.ConfigValues(rng, Golden.Path(Consistency, "scheduler/scheduler_config.json"), "scheduler/scheduler_config.json", 24)))
            yield return c;
        foreach (var c in Of(Keys("scheduler/scheduler_config.json",
                     ("sigma_min", "0"), ("sigma_min", "-0.002"), ("sigma_min", "80"), ("sigma_min", "100"), ("sigma_max", "0.001"), ("sigma_max", "1e308"),
                     ("sigma_max", "Infinity"), ("sigma_data", "0"), ("sigma_data", "-0.5"), ("rho", "0"), ("rho", "-7"), ("rho", "1e-30"),
                     ("s_noise", "-1"), ("s_noise", "NaN"), ("num_train_timesteps", "1"), ("num_train_timesteps", "0"), ("num_train_timesteps", "1000000000"),
                     ("clip_denoised", "\"yes\""), ("clip_denoised", "null"), ("_class_name", "\"DDPMScheduler\""), ("_class_name", "\"IPNDMScheduler\""))))
            yield return c;
        foreach (var c in Of(NewModelCases.ConfigValues(rng, Golden.Path(Consistency, "unet/config.json"), "unet/config.json", 18))) yield return c;
        foreach (var c in Of(Keys("unet/config.json",
                     ("num_class_embeds", "null"), ("num_class_embeds", "0"), ("num_class_embeds", "-1"), ("num_class_embeds", "1"), ("num_class_embeds", "11"),
                     ("class_embed_type", "\"timestep\""), ("class_embed_type", "\"identity\""), ("sample_size", "0"), ("sample_size", "null"),
                     ("in_channels", "4"), ("downsample_type", "\"x\""), ("upsample_type", "\"conv\""))))
            yield return c;
        foreach (var c in Of(Keys("model_index.json",
                     ("scheduler", "[\"diffusers\", \"DDPMScheduler\"]"), ("scheduler", "null"), ("unet", "[\"diffusers\", \"UNet2DConditionModel\"]"),
                     ("_class_name", "\"DDPMPipeline\""), ("_class_name", "null"))))
            yield return c;
        // a scheduler of another class in the folder (diffusers runs whatever scheduler it is given)
        foreach (var cls in new[] { "DDPMScheduler", "EulerDiscreteScheduler", "IPNDMScheduler" })
            yield return new($"{Consistency}: scheduler folder holds a default {cls}", Consistency, w => WriteDefaultConfig(w, cls), RunConsistency);
        foreach (var (name, mutate) in NewModelCases.Safetensors(rng, "unet/diffusion_pytorch_model.safetensors", 14))
            yield return new($"{Consistency}: {name}", Consistency, mutate, RunConsistency);
        foreach (var f in new[] { "scheduler", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "model_index.json" })
            yield return new($"{Consistency}: {f} missing", Consistency, w =>
            {
                string p = w.File(f);
                if (Directory.Exists(p)) Directory.Delete(p, recursive: true);
                else File.Delete(p);
            }, RunConsistency);
        foreach (var text in new[] { "", "[]", "{\"_class_name\": \"CMStochasticIterativeScheduler\", \"rho\": }" })
            yield return new($"{Consistency}: scheduler_config.json is '{text}'", Consistency, w => w.Write("scheduler/scheduler_config.json", text), RunConsistency);
    }

    /// <summary>Writes the default config of <paramref name="className"/> (as SavePretrained writes it) to <c>model/scheduler</c>.</summary>
    /// <remarks>
    /// A key whose default is ±Infinity (DPM-Solver's <c>lambda_min_clipped</c>) is left out, as its default, so that the
    /// file stays standard JSON for <see cref="FuzzWorkspace.SetJson(string, string, string)"/>.
    /// </remarks>
    private static void WriteDefaultConfig(FuzzWorkspace w, string className)
    {
        Directory.CreateDirectory(w.File("scheduler"));
        File.WriteAllText(w.File("scheduler", "scheduler_config.json"), DefaultConfig(className).ToJsonString());
    }

    private static JsonObject DefaultConfig(string className)
    {
        using var dir = new TempDir();
        using (var s = SchedulerFactory.FromJson($"{{\"_class_name\": \"{className}\"}}")) s.SavePretrained(dir.Path);
        string text = Regex.Replace(File.ReadAllText(dir.File("scheduler_config.json")), @"(?<=:\s*)-?Infinity", "\"@@INF@@\"");
        var obj = (JsonObject)JsonNode.Parse(text)!;
        foreach (var key in obj.Where(kv => kv.Value is JsonValue v && v.TryGetValue<string>(out var t) && t == "@@INF@@").Select(kv => kv.Key).ToList())
            obj.Remove(key);
        return obj;
    }

    private static string[] DefaultKeys(string className) => DefaultConfig(className).Select(kv => kv.Key).Where(k => !k.StartsWith('_')).ToArray();

    /// <summary>
    /// Loads <c>model/scheduler</c> and runs 3 steps on a seeded sample with a stand-in model output (half the scaled
    /// input). A step that gives NaN / ±Inf where the scheduler's <see cref="SchedulerBase.NonFiniteCause"/> names why (a
    /// config diffusers also runs into NaN; the denoising loop stops there with that message) ends the run as null.
    /// </summary>
    private static torch.Tensor? RunScheduler(FuzzWorkspace w)
    {
        using var s = SchedulerFactory.FromPretrained(w.Model, "scheduler");
        s.SetTimesteps(3);
        using var gen = new torch.Generator(0);
        var sample = torch.randn([1, 3, 8, 8], generator: gen) * s.InitNoiseSigma;
        var options = new StepOptions { Generators = [gen] };
        foreach (double t in s.Timesteps.to(torch.ScalarType.Float64).data<double>().ToArray())
        {
            var input = s.ScaleModelInput(sample, t);
            using var output = s.Step(input * 0.5, t, sample, options);
            sample = output.PrevSample;
            using var finite = torch.isfinite(sample).all();
            if (!finite.item<bool>() && s.NonFiniteCause(t) is not null) return null;
        }
        return sample;
    }

    /// <summary>The new schedulers' configs, each read from scheduler_config.json and stepped.</summary>
    public static IEnumerable<LoaderCase> SchedulerConfigs()
    {
        var rng = new Random(Seed + 1);
        foreach (var cls in NewSchedulers)
        {
            yield return new($"{cls} default", "tiny-ddpm", w => WriteDefaultConfig(w, cls), RunScheduler);
            string[] keys = DefaultKeys(cls);
            for (int i = 0; i < 16; i++)
            {
                string key = keys[rng.Next(keys.Length)], value = RandomCases.Values[rng.Next(RandomCases.Values.Length)];
                yield return new($"{cls} {key}={value}", "tiny-ddpm", w =>
                {
                    WriteDefaultConfig(w, cls);
                    w.SetJson("scheduler/scheduler_config.json", key, value);
                }, RunScheduler)
                { Names = [key] };
            }
        }
        foreach (var (cls, key, value) in new[]
                 {
                     ("IPNDMScheduler", "trained_betas", "[0.5]"), ("IPNDMScheduler", "trained_betas", "[2.0, 0.5]"), ("IPNDMScheduler", "trained_betas", "[NaN]"),
                     ("IPNDMScheduler", "num_train_timesteps", "1"), ("IPNDMScheduler", "num_train_timesteps", "2"),
                     ("DDIMInverseScheduler", "steps_offset", "999"), ("DDIMInverseScheduler", "timestep_spacing", "\"trailing\""),
                     ("DDIMInverseScheduler", "timestep_spacing", "\"linspace\""), ("DDIMInverseScheduler", "clip_sample_range", "0"),
                     ("DDIMInverseScheduler", "prediction_type", "\"sample\""), ("DDIMInverseScheduler", "rescale_betas_zero_snr", "true"),
                     ("DDIMInverseScheduler", "set_alpha_to_one", "false"), ("DDIMInverseScheduler", "beta_schedule", "\"squaredcos_cap_v2\""),
                     ("DPMSolverMultistepInverseScheduler", "solver_order", "0"), ("DPMSolverMultistepInverseScheduler", "solver_order", "4"),
                     ("DPMSolverMultistepInverseScheduler", "algorithm_type", "\"sde-dpmsolver++\""), ("DPMSolverMultistepInverseScheduler", "algorithm_type", "\"x\""),
                     ("DPMSolverMultistepInverseScheduler", "solver_type", "\"x\""), ("DPMSolverMultistepInverseScheduler", "use_karras_sigmas", "true"),
                     ("DPMSolverMultistepInverseScheduler", "lambda_min_clipped", "NaN"), ("DPMSolverMultistepInverseScheduler", "variance_type", "\"learned\""),
                     ("DPMSolverMultistepInverseScheduler", "timestep_spacing", "\"leading\""), ("DPMSolverMultistepInverseScheduler", "steps_offset", "1000"),
                     ("DPMSolverMultistepInverseScheduler", "rescale_betas_zero_snr", "true"),
                     ("CMStochasticIterativeScheduler", "sigma_min", "-1"), ("CMStochasticIterativeScheduler", "sigma_max", "0.001"),
                     ("CMStochasticIterativeScheduler", "rho", "0"), ("CMStochasticIterativeScheduler", "sigma_data", "0"),
                 })
            yield return new($"{cls} {key}={value}", "tiny-ddpm", w =>
            {
                WriteDefaultConfig(w, cls);
                w.SetJson("scheduler/scheduler_config.json", key, value);
            }, RunScheduler)
            { Names = [key] };
    }

    /// <summary>The new scheduler classes through <c>generate --scheduler … --scheduler-config …</c> on tiny-ddpm and tiny-dit.</summary>
    public static IEnumerable<FuzzCase> SchedulerOptions()
    {
        var rng = new Random(Seed + 2);
        foreach (var cls in NewSchedulers)
        {
            yield return new($"ddpm --scheduler {cls}", "tiny-ddpm", _ => { }, w => FuzzCommands.Ddpm(w, ("--scheduler", cls))) { Names = ["--scheduler"] };
            yield return new($"dit --scheduler {cls}", "tiny-dit", _ => { }, w => FuzzCommands.DiT(w, ("--scheduler", cls))) { Names = ["--scheduler"] };
            string[] keys = DefaultKeys(cls);
            for (int i = 0; i < 5; i++)
            {
                string key = keys[rng.Next(keys.Length)], value = RandomCases.Values[rng.Next(RandomCases.Values.Length)];
                yield return new($"ddpm --scheduler {cls} --scheduler-config {key}={value}", "tiny-ddpm", _ => { },
                    w => FuzzCommands.Ddpm(w, ("--scheduler", cls), ("--scheduler-config", $"{key}={value}")))
                { Names = [key] };
            }
        }
        // a folder whose own scheduler is of a new class
        foreach (var cls in NewSchedulers)
            yield return new($"tiny-ddpm with a {cls} folder", "tiny-ddpm", w => WriteDefaultConfig(w, cls), w => FuzzCommands.Ddpm(w)) { Names = [cls] };
    }

    private static IEnumerable<(string, Action<FuzzWorkspace>, string[])> Keys(string file, params (string Key, string Value)[] values) =>
        values.Select(v => ($"{file} {v.Key}={v.Value}", (Action<FuzzWorkspace>)(w => w.SetJson(file, v.Key, v.Value)), new[] { v.Key }));
}
