using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The tiny-ddpm UNet2DModel (golden/tiny-ddpm/unet, safetensors weights) against the outputs and hooked
/// intermediates recorded with diffusers 0.25.1 (golden/tiny-ddpm-expected.safetensors, README section A).
/// </summary>
public class UNet2DModelGoldenTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-ddpm-expected.safetensors";

    private void Report(string what, Tensor actual, Tensor expected)
    {
        log.WriteLine($"{what}: max |diff| = {Tol.MaxAbsDiff(actual, expected):E3}");
        Tol.Close(actual, expected, Tol.ModelAbs, what);
    }

    private static UNet2DModel LoadTiny() => UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), subfolder: "unet");

    [Theory]
    [InlineData("t999", 999L)]
    [InlineData("t500", 500L)]
    [InlineData("t0", 0L)]
    public void IntTimestepMatchesDiffusers(string label, long t)
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var recordedT = Golden.Tensor(Expected, $"unet/{label}/timestep");
        Assert.Equal(t, recordedT[0].item<long>());
        using var expected = Golden.Tensor(Expected, $"unet/{label}/out");
        using var outInt = unet.Forward(x, t).Sample;
        Report($"{label} (long timestep)", outInt, expected);
        using var outTensor = unet.Forward(x, recordedT).Sample;
        Report($"{label} (int64 tensor timestep)", outTensor, expected);
    }

    [Fact]
    public void FractionalFloatTensorTimestepMatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var t = Golden.Tensor(Expected, "unet/t250_5_float/timestep");
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.Equal(250.5f, t[0].item<float>());
        using var expected = Golden.Tensor(Expected, "unet/t250_5_float/out");
        using var output = unet.Forward(x, t).Sample;
        Report("t=250.5 (float tensor)", output, expected);
        // A 0-d tensor is broadcast like a 1-element one.
        using var t0d = t[0];
        using var output0d = unet.Forward(x, t0d).Sample;
        Tol.Close(output0d, expected, Tol.ModelAbs, "t=250.5 (0-d float tensor)");
    }

    [Fact]
    public void PlainDoubleTimestepIsTruncatedLikeDiffusers()
    {
        // diffusers turns a Python number into torch.tensor([t], dtype=torch.long): 250.5 -> 250.
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var a = unet.Forward(x, 250.5).Sample;
        using var b = unet.Forward(x, 250L).Sample;
        using var fractional = Golden.Tensor(Expected, "unet/t250_5_float/out");
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
        Assert.True(Tol.MaxAbsDiff(a, fractional) > 1e-4, "250.5 as a double must not act as a fractional timestep");
    }

    [Fact]
    public void BatchWithOneTimestepPerItemMatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x_batch2");
        using var t = Golden.Tensor(Expected, "unet/batch2/timestep");
        Assert.Equal(new long[] { 10, 700 }, t.data<long>().ToArray());
        using var expected = Golden.Tensor(Expected, "unet/batch2/out");
        using var output = unet.Forward(x, t).Sample;
        Report("batch of 2 with timesteps [10, 700]", output, expected);
    }

    [Fact]
    public void ChannelsLastPassMatchesDiffusersAndKeepsItsLayout()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x_batch2");
        using var t = Golden.Tensor(Expected, "unet/batch2/timestep");
        using var expected = Golden.Tensor(Expected, "unet/batch2/out");
        var layouts = new List<string>();
        var seen = new HashSet<string>();
        // the stages every pass must have shown the hook (else an empty `layouts` proves nothing)
        var stages = new HashSet<string> { "conv_in", "down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1", "conv_norm_out", "conv_out" };
        unet.IntermediateHook = (name, h) =>
        {
            if (h.dim() == 4) seen.Add(name);
            if (h.dim() == 4 && !IsChannelsLast(h)) layouts.Add(name);
        };
        unet.ChannelsLast = true;
        using var output = unet.Forward(x, t).Sample;
        Report("batch2, channels-last pass", output, expected);
        Assert.True(output.is_contiguous());
        Assert.Superset(stages, seen);
        Assert.Empty(layouts); // every stage stayed channels-last (attention included)

        unet.ChannelsLast = false;
        seen.Clear();
        unet.IntermediateHook = (name, h) => { seen.Add(name); if (!h.is_contiguous()) layouts.Add(name); };
        using var nchw = unet.Forward(x, t).Sample;
        Assert.Superset(stages, seen);
        Assert.Empty(layouts); // and a NCHW pass stays NCHW
    }

    private static bool IsChannelsLast(Tensor x) =>
        x.stride(1) == 1 && x.stride(3) == x.shape[1] && x.stride(2) == x.shape[1] * x.shape[3] && x.stride(0) == x.shape[1] * x.shape[2] * x.shape[3];

    [Fact]
    public void TorchBinWeightsGiveTheSameOutputs()
    {
        using var dir = new TempDir();
        string src = Golden.Path("tiny-ddpm", "unet");
        File.Copy(System.IO.Path.Combine(src, "config.json"), dir.File("config.json"));
        File.Copy(System.IO.Path.Combine(src, "diffusion_pytorch_model.bin"), dir.File("diffusion_pytorch_model.bin"));
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromPretrained(dir.Path);
        using var x = Golden.Tensor(Expected, "unet/x");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var output = unet.Forward(x, 500L).Sample;
        Report("t500 from diffusion_pytorch_model.bin", output, expected);
    }

    [Fact]
    public void IntermediatesMatchDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var golden = Golden.Open(Expected);
        var errors = new List<string>();
        var report = new List<string>();
        var seen = new List<string>();
        unet.IntermediateHook = (name, actual) =>
        {
            string key = $"unet/t500/intermediate/{name}";
            seen.Add(name);
            if (golden.Contains(key))
            {
                using var e = golden.Load(key);
                Check(errors, report, name, actual, e);
            }
            else
            {
                Assert.True(golden.Contains(key + "#chmean"), $"no golden intermediate for {name}");
                using var mean = golden.Load(key + "#chmean");
                using var std = golden.Load(key + "#chstd");
                using var corner = golden.Load(key + "#corner8");
                var dims = Enumerable.Range(0, (int)actual.dim()).Where(d => d != 1).Select(d => (long)d).ToArray();
                using var aMean = actual.mean(dims);
                using var aStd = actual.std(dims, unbiased: true);
                using var aCorner = actual[.., .., ..8, ..8];
                Check(errors, report, name + "#chmean", aMean, mean);
                Check(errors, report, name + "#chstd", aStd, std);
                Check(errors, report, name + "#corner8", aCorner, corner);
            }
        };
        using var output = unet.Forward(x, 500L).Sample;
        Assert.Equal(new[] { "time_proj", "time_embedding", "conv_in", "down_blocks.0", "down_blocks.1", "mid_block",
            "up_blocks.0", "up_blocks.1", "conv_norm_out", "conv_out" }, seen);
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        foreach (var line in report) log.WriteLine(line);
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        Report("t500 output", output, expected);
    }

    private static void Check(List<string> errors, List<string> report, string name, Tensor actual, Tensor expected)
    {
        if (!actual.shape.SequenceEqual(expected.shape))
        {
            errors.Add($"{name}: shape [{string.Join(", ", actual.shape)}] != [{string.Join(", ", expected.shape)}]");
            return;
        }
        double d = Tol.MaxAbsDiff(actual, expected);
        report.Add($"intermediate {name}: max |diff| = {d:E3}");
        if (d > Tol.ModelAbs) errors.Add($"{name}: max |diff| = {d:E3}");
    }
}
