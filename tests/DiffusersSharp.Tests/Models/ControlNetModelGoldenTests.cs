using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// ControlNetModel against diffusers 0.25.1 (golden README section H): the standalone forward's residuals and
/// intermediates, the tiny-sd UNet consuming them, guess mode's logspace scaling, global pooling, and from_unet.
/// </summary>
public class ControlNetModelGoldenTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sd-controlnet-expected.safetensors";
    private const string Prefix = "controlnet/t500/";

    internal static ControlNetModel LoadTiny() => ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));

    private sealed record Inputs(Tensor X, Tensor Ehs, Tensor Cond) : IDisposable
    {
        public static Inputs Load() => new(Golden.Tensor(Expected, "controlnet/x"),
            Golden.Tensor(Expected, "controlnet/encoder_hidden_states"), Golden.Tensor(Expected, "controlnet/controlnet_cond"));

        public void Dispose()
        {
            X.Dispose();
            Ehs.Dispose();
            Cond.Dispose();
        }
    }

    private double Check(string key, Tensor actual)
    {
        using var expected = Golden.Tensor(Expected, key);
        double err = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"{key}: max abs error {err:E3}");
        Assert.True(err <= Tol.ModelAbs, $"{key}: max |actual - expected| = {err:E3} > {Tol.ModelAbs:E1}");
        return err;
    }

    [Fact]
    public void TheChannelsLastForwardMatchesDiffusers()
    {
        // the layout bf16 runs in by default (ControlNetModel.ChannelsLast), here in fp32 against the same golden values
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        Assert.False(net.ChannelsLast);
        net.ChannelsLast = true;
        using var inputs = Inputs.Load();
        using var output = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        Assert.Equal(6, output.DownBlockResSamples.Count);
        for (int j = 0; j < output.DownBlockResSamples.Count; j++)
        {
            Assert.True(Layers.IsChannelsLast(output.DownBlockResSamples[j]), $"residual {j} is not channels-last");
            Check($"{Prefix}down_block_res_sample_{j}", output.DownBlockResSamples[j]);
        }
        Check($"{Prefix}mid_block_res_sample", output.MidBlockResSample);
        using var bf16 = LoadTiny();
        bf16.to(ScalarType.BFloat16);
        Assert.True(bf16.ChannelsLast);
    }

    [Fact]
    public void TheStandaloneForwardMatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var inputs = Inputs.Load();
        var seen = new Dictionary<string, Tensor>();
        net.Hook = (name, t) => seen[name] = t.detach().clone().DetachFromDisposeScope();
        using var output = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        net.Hook = null;
        Assert.Equal(6, net.NumDownResiduals);
        Assert.Equal(6, output.DownBlockResSamples.Count);
        for (int j = 0; j < output.DownBlockResSamples.Count; j++)
            Check($"{Prefix}down_block_res_sample_{j}", output.DownBlockResSamples[j]);
        Check($"{Prefix}mid_block_res_sample", output.MidBlockResSample);
        foreach (var name in new[] { "time_embedding", "conv_in", "controlnet_cond_embedding", "mid_block" })
            Check($"{Prefix}intermediate/{name}", seen[name]);
        foreach (var t in seen.Values) t.Dispose();
    }

    [Fact]
    public void TheUNetConsumingTheResidualsMatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var inputs = Inputs.Load();
        using var output = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        using var sample = unet.Forward(inputs.X, 500L, inputs.Ehs, downBlockAdditionalResiduals: output.DownBlockResSamples,
            midBlockAdditionalResidual: output.MidBlockResSample).Sample;
        Check("unet_with_residuals/t500/out", sample);
    }

    [Fact]
    public void GuessModeScalesResidualJByLogspaceTimesTheConditioningScale()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var inputs = Inputs.Load();
        using var plain = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        using var guess = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond, conditioningScale: 0.8, guessMode: true);
        int n = plain.DownBlockResSamples.Count;
        for (int j = 0; j < n; j++)
        {
            // torch.logspace(-1, 0, n + 1)[j] = 10^(-1 + j / n), times 0.8, in float32
            float scale = (float)Math.Pow(10, -1 + (double)j / n) * 0.8f;
            using var expected = plain.DownBlockResSamples[j] * scale;
            Tol.Close(guess.DownBlockResSamples[j], expected, 1e-7, $"guess-mode residual {j}");
        }
        using var expectedMid = plain.MidBlockResSample * 0.8f;
        Tol.Close(guess.MidBlockResSample, expectedMid, 1e-7, "guess-mode mid residual");
        Assert.True(Tol.MaxAbsDiff(guess.DownBlockResSamples[0], plain.DownBlockResSamples[0]) > 1e-3);
    }

    [Fact]
    public void TheConditioningScaleMultipliesEveryResidual()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var inputs = Inputs.Load();
        using var half = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond, conditioningScale: 0.5);
        Assert.Equal(6, half.DownBlockResSamples.Count);
        for (int j = 0; j < half.DownBlockResSamples.Count; j++)
        {
            using var expected = Golden.Tensor(Expected, $"{Prefix}down_block_res_sample_{j}");
            Tol.Close(half.DownBlockResSamples[j], expected * 0.5, Tol.ModelAbs / 2, $"residual {j} at scale 0.5");
        }
        using var expectedMid = Golden.Tensor(Expected, $"{Prefix}mid_block_res_sample");
        Tol.Close(half.MidBlockResSample, expectedMid * 0.5, Tol.ModelAbs / 2, "mid residual at scale 0.5");
    }

    [Fact]
    public void GlobalPoolingAveragesTheResidualsAndTheUNetBroadcastsThem()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var pooled = ControlNetModel.FromConfig(net.Config with { GlobalPoolConditions = true });
        pooled.load_state_dict(net.state_dict());
        using var inputs = Inputs.Load();
        using var plain = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        using var output = pooled.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond, guessMode: true);
        for (int j = 0; j < plain.DownBlockResSamples.Count; j++)
        {
            using var mean = plain.DownBlockResSamples[j].mean([2, 3], keepdim: true);
            Assert.Equal(new[] { 1L, mean.shape[1], 1, 1 }, output.DownBlockResSamples[j].shape);
            Tol.Close(output.DownBlockResSamples[j], mean, 1e-7, $"pooled residual {j}");
        }
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var expanded = unet.Forward(inputs.X, 500L, inputs.Ehs,
            downBlockAdditionalResiduals: output.DownBlockResSamples.Zip(plain.DownBlockResSamples, (p, s) => p.expand_as(s)).ToArray(),
            midBlockAdditionalResidual: output.MidBlockResSample.expand_as(plain.MidBlockResSample)).Sample;
        using var broadcast = unet.Forward(inputs.X, 500L, inputs.Ehs, downBlockAdditionalResiduals: output.DownBlockResSamples,
            midBlockAdditionalResidual: output.MidBlockResSample).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(broadcast, expanded));
    }

    [Fact]
    public void FromUnetWritesTheConfigDiffusersWroteAndCopiesTheUNetsWeights()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
        var ours = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(net.Config, ConfigJson.Options))!.AsObject();
        var theirs = JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sd-controlnet", "config.json")))!.AsObject();
        foreach (var key in new[] { "_class_name", "_diffusers_version" }) { ours.Remove(key); theirs.Remove(key); }
        Assert.Equal(theirs.Select(k => k.Key).Order(), ours.Select(k => k.Key).Order());
        Assert.Empty(theirs.Where(k => !JsonNode.DeepEquals(k.Value, ours[k.Key])).Select(k => $"{k.Key}: {k.Value?.ToJsonString()} vs {ours[k.Key]?.ToJsonString()}"));

        var unetWeights = unet.state_dict();
        int copied = 0;
        foreach (var (name, value) in net.state_dict())
        {
            if (name.StartsWith("controlnet_", StringComparison.Ordinal))
            {
                if (name.StartsWith("controlnet_cond_embedding.conv_out", StringComparison.Ordinal) || !name.StartsWith("controlnet_cond_embedding", StringComparison.Ordinal))
                    Assert.Equal(0.0, value.abs().max().item<float>());
                continue;
            }
            Assert.Equal(0.0, Tol.MaxAbsDiff(value, unetWeights[name]));
            copied++;
        }
        Assert.Equal(unetWeights.Keys.Count(k => k.Split('.')[0] is "conv_in" or "time_embedding" or "down_blocks" or "mid_block"), copied);
        // the golden net was made the same way: its UNet part equals tiny-sd's
        using var golden = LoadTiny();
        Assert.Equal(0.0, Tol.MaxAbsDiff(golden.state_dict()["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"],
            unetWeights["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"]));
    }

    [Fact]
    public void ASavedControlNetLoadsBackBitForBit()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var dir = new TempDir();
        net.SavePretrained(dir.Path);
        using var again = ControlNetModel.FromPretrained(dir.Path);
        Assert.Equal(net.Config.ConditioningEmbeddingOutChannels, again.Config.ConditioningEmbeddingOutChannels);
        var a = again.state_dict();
        foreach (var (name, value) in net.state_dict())
            Assert.Equal(0.0, Tol.MaxAbsDiff(a[name], value));
        log.WriteLine($"tiny ControlNet: {net.NumParameters()} parameters");
    }

    [Fact]
    public void BgrChannelOrderFlipsTheControlImageFirst()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var bgr = ControlNetModel.FromConfig(net.Config with { ControlnetConditioningChannelOrder = "bgr" });
        bgr.load_state_dict(net.state_dict());
        using var inputs = Inputs.Load();
        using var flipped = inputs.Cond.flip(1);
        using var expected = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond);
        using var actual = bgr.Forward(inputs.X, 500L, inputs.Ehs, flipped);
        for (int j = 0; j < expected.DownBlockResSamples.Count; j++)
            Assert.Equal(0.0, Tol.MaxAbsDiff(actual.DownBlockResSamples[j], expected.DownBlockResSamples[j]));
        Assert.Equal(0.0, Tol.MaxAbsDiff(actual.MidBlockResSample, expected.MidBlockResSample));
    }

    [Fact]
    public void OnlyTheOutputOutlivesAForward()
    {
        using var _ = torch.no_grad();
        using var net = LoadTiny();
        using var inputs = Inputs.Load();
        long Live() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        long before = Live();
        var output = net.Forward(inputs.X, 500L, inputs.Ehs, inputs.Cond, guessMode: true);
        Assert.Equal(before + 7, Live()); // six down residuals and the mid residual
        output.Dispose();
        Assert.Equal(before, Live());
        using var multi = new MultiControlNetModel([net, net]);
        before = Live();
        using (multi.Forward(inputs.X, 500L, inputs.Ehs, [inputs.Cond, inputs.Cond], [1.0, 0.5]))
            Assert.Equal(before + 7, Live());
        Assert.Equal(before, Live());
    }
}
