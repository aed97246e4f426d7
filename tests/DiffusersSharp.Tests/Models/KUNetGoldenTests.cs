using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The UNet2DConditionModel of K-diffusion blocks (KDownBlock2D, KCrossAttnDownBlock2D, KCrossAttnUpBlock2D, KUpBlock2D:
/// ada_group resnets, KAttentionBlock, K down/upsamplers; Fourier time embedding with time_cond_proj_dim, 1×1 conv_in
/// / conv_out, norm_num_groups null, no mid block) against diffusers 0.25.1 (tests/golden/latent-upscale, its make.py).
/// </summary>
public class KUNetGoldenTests
{
    private const string Expected = "latent-upscale/latent-upscale-expected.safetensors";

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    [Theory]
    [InlineData("b1")]
    [InlineData("b2")]
    [InlineData("b1_6x10")]
    public void TheKBlockUNetMatchesDiffusers(string name)
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("latent-upscale"), subfolder: "unet");
        double t = Golden.Json("latent-upscale/latent-upscale-expected.json").RootElement.GetProperty("forward").GetProperty(name)
            .GetProperty("timestep").GetDouble();
        using var timestep = torch.tensor((float)t);
        var output = unet.Forward(G($"forward/{name}/sample_in"), timestep, G($"forward/{name}/encoder_hidden_states"),
            timestepCond: G($"forward/{name}/timestep_cond")).Sample;
        Tol.Close(output, G($"forward/{name}/out"), Tol.ModelAbs, name);
    }

    [Fact]
    public void TheKBlockUNetLeavesItsInputsAloneAndKeepsOnlyItsOutput()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("latent-upscale"), subfolder: "unet");
        using var x = G("forward/b2/sample_in");
        using var copy = x.clone();
        using var ehs = G("forward/b2/encoder_hidden_states");
        using var cond = G("forward/b2/timestep_cond");
        using var timestep = torch.tensor(-0.25f);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var output = unet.Forward(x, timestep, ehs, timestepCond: cond).Sample)
            Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(0.0, Tol.MaxAbsDiff(x, copy));
    }

    [Fact]
    public void TheKBlockUNetHasDiffusersWeightNamesAndNoOutputNorm()
    {
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("latent-upscale"), subfolder: "unet");
        var names = unet.state_dict().Keys.ToHashSet();
        Assert.Contains("down_blocks.0.resnets.0.norm1.linear.weight", names);
        Assert.Contains("down_blocks.1.attentions.0.attn1.to_q.bias", names);          // no downsampler: self-attention
        Assert.Contains("down_blocks.1.attentions.0.attn2.norm_cross.weight", names);
        Assert.Contains("up_blocks.0.attentions.0.norm1.linear.weight", names);         // the K "first block"
        Assert.Contains("up_blocks.1.resnets.0.conv_shortcut.weight", names);
        Assert.Contains("time_embedding.cond_proj.weight", names);
        Assert.DoesNotContain("up_blocks.1.resnets.0.conv_shortcut.bias", names);
        Assert.DoesNotContain(names, n => n.StartsWith("conv_norm_out", StringComparison.Ordinal) || n.Contains("time_emb_proj", StringComparison.Ordinal));
        Assert.Equal(new long[] { 64, 32 }, unet.state_dict()["up_blocks.0.resnets.0.norm2.linear.weight"].shape);
    }

    [Fact]
    public void NormNumGroupsNullIsRefusedForBlocksThatNeedIt()
    {
        var config = new UNet2DConditionModelConfig
        {
            BlockOutChannels = [32, 32], DownBlockTypes = ["KDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "KUpBlock2D"],
            MidBlockType = null, NormNumGroups = null,
        };
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(config, "bad/config.json"));
        Assert.Equal("bad/config.json: config key 'norm_num_groups': norm_num_groups must be a positive integer, got null", e.Message);
    }
}
