using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DiffusersSharp.Bench;

/// <summary>
/// ONNX Runtime on the same UNets, for issue 14's comparison: bench/onnx holds diffusers' ddpm-cat-256 UNet and SD 1.5 UNet
/// exported by PyTorch's exporter (bench/onnx/export_onnx.py, run where PyTorch is) as graphs whose float weights point
/// into an external weights.bin; the graph is copied to a scratch folder beside a weights.bin of random values
/// (N(0, 0.02), seeded) of the size its .json records, and run with ONNX Runtime's C# API, all graph optimisations on.
/// </summary>
public static class OrtBench
{
    public static void Run(string model, int[] threads, int runs)
    {
        string graph = Path.GetFullPath(Path.Combine("bench", "onnx", model + ".onnx"));
        if (!File.Exists(graph)) throw new FileNotFoundException($"no ONNX graph {graph} (run from the repository root)");
        var info = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(graph, ".json"))).RootElement;
        long weightBytes = info.GetProperty("weights_bin_bytes").GetInt64();
        string dir = Path.Combine(Path.GetTempPath(), "diffusers-sharp-ort", model);
        Directory.CreateDirectory(dir);
        File.Copy(graph, Path.Combine(dir, model + ".onnx"), overwrite: true);
        string weights = Path.Combine(dir, "weights.bin");
        if (!File.Exists(weights) || new FileInfo(weights).Length != weightBytes) WriteRandomWeights(weights, weightBytes);
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}, {model}: {info.GetProperty("params").GetInt64():N0} parameters, " +
                          $"graph exported by {info.GetProperty("exporter").GetString()} (torch {info.GetProperty("torch").GetString()})");
        foreach (int t in threads)
        {
            using var options = new SessionOptions
            {
                IntraOpNumThreads = t, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            };
            // Random weights (the norms' scales too, not ones as in a trained model) shrink activations into subnormal floats
            // layer by layer, which x86 handles ~100× slower: flush them, as libtorch's initialised weights never make them.
            options.AddSessionConfigEntry("session.set_denormal_as_zero", "1");
            using var session = new InferenceSession(Path.Combine(dir, model + ".onnx"), options);
            var inputs = Inputs(session);
            double? gflop = model == "sd15-unet" ? SdBench.UNetStepGflop : model == "ddpm-cat-256" ? UNet2DBench.ForwardGflop : null;
            Harness.Time($"ORT fp32 {model} threads {t}", 1, runs, () => { using var r = session.Run(inputs); }, gflop);
            Console.WriteLine($"  peak RSS {Harness.PeakRssBytes() / 1e9:F2} GB (weights {weightBytes / 1e9:F2} GB)");
        }
    }

    private static List<NamedOnnxValue> Inputs(InferenceSession session)
    {
        var rng = new Random(0);
        var list = new List<NamedOnnxValue>();
        foreach (var (name, meta) in session.InputMetadata)
        {
            int[] dims = meta.Dimensions;
            if (meta.ElementType == typeof(long))
                list.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(Enumerable.Repeat(500L, dims.Aggregate(1, (a, b) => a * b)).ToArray(), dims)));
            else
            {
                var data = new float[dims.Aggregate(1, (a, b) => a * b)];
                for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
                list.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(data, dims)));
            }
        }
        return list;
    }

    private static void WriteRandomWeights(string path, long bytes)
    {
        var rng = new Random(0);
        var buffer = new float[1 << 20];
        using var f = File.Create(path + ".part");
        for (long written = 0; written < bytes;)
        {
            for (int i = 0; i < buffer.Length; i++)
                buffer[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
            int n = (int)Math.Min(bytes - written, buffer.Length * 4L);
            f.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan())[..n]);
            written += n;
        }
        f.Close();
        File.Move(path + ".part", path, overwrite: true);
    }
}
