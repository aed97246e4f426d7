using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>How a UNet benchmark gets its random weights in the dtype it measures (<c>--weights</c>).</summary>
public enum BenchWeights
{
    /// <summary>
    /// As a user's model holds them (the default): the random model is written once as a diffusers folder (fp32
    /// safetensors under the temp folder) and loaded with <c>FromPretrained</c> and <c>LoadOptions.Dtype</c>, each
    /// weight converted as it is read.
    /// </summary>
    Loaded,

    /// <summary>
    /// Built in fp32 by <c>FromConfig</c> and converted afterwards with <c>model.to(dtype)</c> (the benches' way before
    /// 2026-12-05). On this project's VM, with huge pages on, the same bf16 SD 1.5 UNet step then takes 1.1-1.25× as long
    /// as a loaded one (with them off, the per-layer cost behind it was gone; docs/BENCHMARKS.md, "2026-12-05 (night)");
    /// kept to measure that.
    /// </summary>
    Converted,
}

/// <summary>The random-weight model folders the UNet benchmarks load (see <see cref="BenchWeights.Loaded"/>).</summary>
public static class BenchModels
{
    /// <summary>Parses <c>--weights</c>: "loaded" (default) or "converted".</summary>
    public static BenchWeights Parse(string value) => value switch
    {
        "loaded" => BenchWeights.Loaded,
        "converted" => BenchWeights.Converted,
        _ => throw new ArgumentException($"--weights: 'loaded' or 'converted', got '{value}'"),
    };

    /// <summary>
    /// The model <paramref name="name"/> in <paramref name="dtype"/> as <paramref name="weights"/> says: loaded by
    /// <paramref name="load"/> from <see cref="Folder"/> with <c>LoadOptions.Dtype</c>, or built by <paramref name="random"/>
    /// (fp32) and converted with <c>to(dtype)</c>.
    /// </summary>
    public static T Model<T>(string name, ScalarType dtype, BenchWeights weights, Func<T> random, Func<string, LoadOptions, T> load)
        where T : nn.Module
    {
        if (weights == BenchWeights.Loaded) return load(Folder(name), new LoadOptions { Dtype = dtype });
        var built = random();
        if (dtype != ScalarType.Float32) built.to(dtype);
        return built;
    }

    /// <summary>The models <see cref="Folder"/> can write, by folder name: each writer saves its random model (seed 0).</summary>
    private static readonly Dictionary<string, Action<string>> Writers = new()
    {
        ["sd15-unet"] = SdBench.WriteSd15UNet,
        ["ddpm-cat-256-unet"] = UNet2DBench.Write,
    };

    /// <summary>
    /// The folder <c>diffusers-bench-models/<paramref name="name"/></c> under the temp folder, written the first time by a
    /// child process (<c>write-bench-model</c>, <see cref="Write"/>): a model built and saved in this process would leave
    /// its fp32 memory to the loaded one (measured: the loaded bf16 step then ran as slowly as a converted one). A folder
    /// left half-written by an interrupted run is written again.
    /// </summary>
    public static string Folder(string name)
    {
        string dir = Dir(name);
        if (File.Exists(Path.Combine(dir, ".complete"))) return dir;
        Console.WriteLine($"  writing the random-weight model to {dir} (once, in a child process)");
        var (code, _) = ChildProcesses.RunSelf(new[] { "write-bench-model", name }, echo: true);
        if (code != 0 || !File.Exists(Path.Combine(dir, ".complete")))
            throw new InvalidOperationException($"writing {dir} failed (exit code {code})");
        return dir;
    }

    /// <summary>The <c>write-bench-model</c> command: writes the folder <paramref name="name"/> (see <see cref="Folder"/>).</summary>
    public static int Write(string name)
    {
        if (!Writers.TryGetValue(name, out var write))
        {
            Console.Error.WriteLine($"write-bench-model: unknown model '{name}' (known: {string.Join(", ", Writers.Keys)})");
            return 2;
        }
        string dir = Dir(name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        write(dir);
        File.WriteAllText(Path.Combine(dir, ".complete"), "");
        return 0;
    }

    private static string Dir(string name) => Path.Combine(Path.GetTempPath(), "diffusers-bench-models", name);
}
