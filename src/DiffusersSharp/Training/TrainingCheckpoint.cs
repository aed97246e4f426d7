using System.Globalization;
using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;
using Modules = TorchSharp.Modules;

namespace DiffusersSharp.Training;

/// <summary>
/// A training checkpoint folder <c>checkpoint-N</c> (N = optimisation steps done): <c>model.safetensors</c> (the
/// UNet's state dict), <c>ema.safetensors</c> (shadow parameters), <c>optimizer.bin</c> (AdamW state: step counts,
/// moments), <c>rng.safetensors</c> (the noise generator's state) and <c>trainer_state.json</c> (step, EMA step,
/// the LR schedule's name / warm-up / length: the schedule is a pure function of the step; and the settings that
/// determine the run, <see cref="TrainingRunSettings"/>, which a resume must match). Written to a temporary
/// folder and renamed, so a crash never leaves a half checkpoint under the final name.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>The folder name prefix of a checkpoint (<c>checkpoint-{step}</c>, as accelerate writes).</summary>
    public const string Prefix = "checkpoint-";

    /// <summary>
    /// What a checkpoint records besides the weights: the step, the EMA's step, the seed and the learning-rate
    /// schedule.
    /// </summary>
    public sealed record State(long Step, long EmaOptimizationStep, long Seed, string LrScheduler, long LrWarmupSteps,
        long TotalSteps, double LearningRate)
    {
        /// <summary>
        /// The settings that determine the run (<see cref="TrainingRunSettings.Of"/>), compared on resume; null in a
        /// checkpoint written before they were recorded.
        /// </summary>
        public IReadOnlyDictionary<string, string>? Settings { get; init; }
    }

    /// <summary>
    /// Writes <c>checkpoint-{step}</c> under <paramref name="outputDir"/> (model, EMA, optimiser, state) and returns
    /// its path.
    /// </summary>
    public static string Save(string outputDir, UNet2DModel model, EMAModel? ema, Modules.AdamW optimizer,
        Generator generator, State state)
    {
        using var scope = torch.NewDisposeScope();
        string final = Path.Combine(outputDir, Prefix + state.Step.ToString(CultureInfo.InvariantCulture));
        string tmp = final + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (n, p) in model.named_parameters()) sd[n] = p;
        foreach (var (n, b) in model.named_buffers()) sd.TryAdd(n, b);
        SafetensorsFile.Save(Path.Combine(tmp, "model.safetensors"), sd);
        if (ema is not null)
        {
            var sh = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int i = 0; i < ema.ShadowParams.Count; i++) sh[$"shadow.{i}"] = ema.ShadowParams[i];
            SafetensorsFile.Save(Path.Combine(tmp, "ema.safetensors"), sh);
        }
        optimizer.save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        using (var rng = generator.get_state())
            SafetensorsFile.Save(Path.Combine(tmp, "rng.safetensors"), new Dictionary<string, Tensor> { ["generator"] = rng });
        File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), JsonSerializer.Serialize(state));
        // A run never writes a step twice (a new run starts in a folder without checkpoints, a resumed one after its
        // newest): an existing folder of that name is not this run's and is left alone.
        if (Directory.Exists(final))
        {
            Directory.Delete(tmp, true);
            throw new DiffusersException($"{final} already exists: not replacing it with this run's checkpoint") { FilePath = final };
        }
        Directory.Move(tmp, final);
        return final;
    }

    /// <summary>The checkpoint folders in <paramref name="outputDir"/>, oldest first.</summary>
    public static IReadOnlyList<(long Step, string Path)> List(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return [];
        var result = new List<(long, string)>();
        foreach (var d in Directory.EnumerateDirectories(outputDir, Prefix + "*"))
            if (long.TryParse(Path.GetFileName(d)[Prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out long s)
                && File.Exists(Path.Combine(d, "trainer_state.json")))
                result.Add((s, d));
        return result.OrderBy(x => x.Item1).ToList();
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints.</summary>
    public static void Prune(string outputDir, int keep)
    {
        var all = List(outputDir);
        for (int i = 0; i < all.Count - keep; i++) Directory.Delete(all[i].Path, true);
    }

    // A state without one of its fields (or with null for the schedule's name) is not one this class wrote: read with
    // the defaults it would be compared as a run of 0 steps at learning rate 0.
    private static readonly JsonSerializerOptions StateJson = new()
    {
        RespectRequiredConstructorParameters = true,
        RespectNullableAnnotations = true,
    };

    /// <summary>Reads the <c>trainer_state.json</c> of checkpoint <paramref name="folder"/>.</summary>
    public static State ReadState(string folder)
    {
        string statePath = Path.Combine(folder, "trainer_state.json");
        try
        {
            return JsonSerializer.Deserialize<State>(File.ReadAllText(statePath), StateJson)
                ?? throw new DiffusersException($"{statePath}: empty trainer state") { FilePath = statePath };
        }
        catch (JsonException e)
        {
            throw new DiffusersException($"{statePath}: not a trainer state: {e.Message}", e) { FilePath = statePath };
        }
    }

    /// <summary>Restores model, EMA, optimiser and generator from <paramref name="folder"/>; returns its state.</summary>
    public static State Load(string folder, UNet2DModel model, EMAModel? ema, Modules.AdamW optimizer, Generator generator)
    {
        var state = ReadState(folder);
        using var scope = torch.NewDisposeScope();
        using (var f = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
        {
            var weights = f.LoadAll();
            try { WeightLoader.LoadInto(model, weights, folder); }
            finally { foreach (var t in weights.Values) t.Dispose(); }
        }
        if (ema is not null)
        {
            string emaPath = Path.Combine(folder, "ema.safetensors");
            if (!File.Exists(emaPath)) throw new DiffusersException($"{emaPath}: missing (the run uses EMA)");
            using var f = SafetensorsFile.Open(emaPath);
            var shadow = Enumerable.Range(0, ema.ShadowParams.Count).Select(i => f.Load($"shadow.{i}")).ToArray();
            try { ema.LoadShadow(shadow); }
            finally { foreach (var t in shadow) t.Dispose(); }
            ema.OptimizationStep = state.EmaOptimizationStep;
        }
        LoadOptimizer(optimizer, Path.Combine(folder, "optimizer.bin"));
        using (var f = SafetensorsFile.Open(Path.Combine(folder, "rng.safetensors")))
        using (var rng = f.Load("generator"))
            generator.set_state(rng);
        return state;
    }

    // TorchSharp reads the AdamW state with a BinaryReader: a missing, truncated or foreign file fails with the
    // reader's exception (FileNotFoundException, EndOfStreamException, ...), which names no checkpoint.
    private static void LoadOptimizer(Modules.AdamW optimizer, string path)
    {
        if (!File.Exists(path)) throw new DiffusersException($"{path}: missing (the checkpoint's AdamW state)") { FilePath = path };
        try
        {
            optimizer.load_state_dict(path);
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or FormatException or OverflowException)
        {
            throw new DiffusersException($"{path}: not the AdamW state of this model: {e.Message}", e) { FilePath = path };
        }
    }
}
