using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The residuals diffusers 0.25.1's UNet2DConditionModel.forward adds: ControlNet's <c>down_block_additional_residuals</c>
/// / <c>mid_block_additional_residual</c> (against golden section H, and against the forward written out by hand with
/// the model's own blocks, adding the residuals where diffusers adds them) and the T2I-Adapter's
/// <c>down_intrablock_additional_residuals</c>.
/// </summary>
public class UNet2DConditionModelResidualTests
{
    private const string ControlNetExpected = "tiny-sd-controlnet-expected.safetensors";

    private static UNet2DConditionModel LoadTiny() => UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");

    private static Tensor[] ControlNetDown() =>
        Enumerable.Range(0, 6).Select(j => Golden.Tensor(ControlNetExpected, $"controlnet/t500/down_block_res_sample_{j}")).ToArray();

    [Fact]
    public void ControlNetResiduals_MatchDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(ControlNetExpected, "controlnet/x");
        using var ehs = Golden.Tensor(ControlNetExpected, "controlnet/encoder_hidden_states");
        var down = ControlNetDown();
        using var mid = Golden.Tensor(ControlNetExpected, "controlnet/t500/mid_block_res_sample");
        using var with = unet.Forward(x, 500L, ehs, downBlockAdditionalResiduals: down, midBlockAdditionalResidual: mid).Sample;
        using var expectedWith = Golden.Tensor(ControlNetExpected, "unet_with_residuals/t500/out");
        Tol.Close(with, expectedWith, Tol.ModelAbs, "unet with ControlNet residuals");
        using var without = unet.Forward(x, 500L, ehs).Sample;
        using var expectedWithout = Golden.Tensor(ControlNetExpected, "unet_without_residuals/t500/out");
        Tol.Close(without, expectedWithout, Tol.ModelAbs, "unet without residuals");
        Assert.True(Tol.MaxAbsDiff(with, without) > 1e-3, "the residuals must change the output");
        foreach (var d in down) d.Dispose();
    }

    [Fact]
    public void ZeroResiduals_ChangeNothing()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(ControlNetExpected, "controlnet/x");
        using var ehs = Golden.Tensor(ControlNetExpected, "controlnet/encoder_hidden_states");
        var zeros = ControlNetDown().Select(d => torch.zeros_like(d)).ToArray();
        using var midZero = torch.zeros(1, 64, 8, 8);
        using var plain = unet.Forward(x, 500L, ehs).Sample;
        using var controlnet = unet.Forward(x, 500L, ehs, downBlockAdditionalResiduals: zeros, midBlockAdditionalResidual: midZero).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(controlnet, plain));
        // T2I-Adapter: one per down block (block 0's output, block 1's last attention output), then one for the mid block
        Tensor[] adapterZeros = [torch.zeros(1, 32, 8, 8), torch.zeros(1, 64, 8, 8), torch.zeros(1, 64, 8, 8)];
        using var adapter = unet.Forward(x, 500L, ehs, downIntrablockAdditionalResiduals: adapterZeros).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(adapter, plain));
    }

    [Fact]
    public void ControlNetResiduals_AreAddedToEverySkipStateAndTheMidBlockOutput()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        torch.manual_seed(7);
        using var x = torch.randn(1, 4, 16, 16);
        using var ehs = torch.randn(1, 5, 32);
        var down = ControlNetDown().Select(d => torch.randn_like(d) * 0.5).ToArray();
        using var mid = torch.randn(1, 64, 8, 8) * 0.5;
        using var actual = unet.Forward(x, 500L, ehs, downBlockAdditionalResiduals: down, midBlockAdditionalResidual: mid).Sample;
        using var expected = ByHand(unet, x, 500, ehs, addToSkips: down, addToMid: mid);
        Tol.Close(actual, expected, 1e-6, "ControlNet residuals added by hand");
        // the same call twice gives the same (no argument was consumed or changed)
        using var again = unet.Forward(x, 500L, ehs, downBlockAdditionalResiduals: down, midBlockAdditionalResidual: mid).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(again, actual));
    }

    [Fact]
    public void AdapterResiduals_GoIntoTheDownBlocksAndOntoTheMidBlock()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        torch.manual_seed(8);
        using var x = torch.randn(1, 4, 16, 16);
        using var ehs = torch.randn(1, 5, 32);
        // block 0 (DownBlock2D): added to its downsampled output, which is also its last skip state;
        // block 1 (CrossAttnDownBlock2D, final): added to its last attention output; then the mid block's output
        Tensor[] adapter = [torch.randn(1, 32, 8, 8), torch.randn(1, 64, 8, 8), torch.randn(1, 64, 8, 8)];
        using var actual = unet.Forward(x, 500L, ehs, downIntrablockAdditionalResiduals: adapter).Sample;
        using var expected = ByHand(unet, x, 500, ehs, addToBlockOutput: [adapter[0], adapter[1]], addToMid: adapter[2]);
        Tol.Close(actual, expected, 1e-6, "T2I-Adapter residuals added by hand");
        // diffusers' deprecated form: down residuals without a mid residual are the adapter's
        using var legacy = unet.Forward(x, 500L, ehs, downBlockAdditionalResiduals: adapter).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(legacy, actual));
    }

    [Fact]
    public void AdapterResidualsOfBatchOne_ServeTheWholeBatch()
    {
        // diffusers' StableDiffusionAdapterPipeline runs one control image for several prompts (without guidance, or with
        // an LCM UNet) on adapter states of batch 1, which `sample += r` broadcasts over the batch; a batch-1 state at the
        // mid block does not have the sample's shape there, and diffusers leaves it out
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        torch.manual_seed(9);
        using var x = torch.randn(2, 4, 16, 16);
        using var ehs = torch.randn(2, 5, 32);
        Tensor[] adapter = [torch.randn(1, 32, 8, 8), torch.randn(1, 64, 8, 8), torch.randn(1, 64, 8, 8)];
        using var actual = unet.Forward(x, 500L, ehs, downIntrablockAdditionalResiduals: adapter).Sample;
        Tensor[] perSample = [adapter[0].repeat(2, 1, 1, 1), adapter[1].repeat(2, 1, 1, 1)];
        using var expected = unet.Forward(x, 500L, ehs, downIntrablockAdditionalResiduals: perSample).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(actual, expected));
    }

    [Fact]
    public void ResidualsOfTheWrongCountOrShape_AreRefusedByIndex()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = torch.zeros(1, 4, 16, 16);
        using var ehs = torch.zeros(1, 5, 32);
        using var mid = torch.zeros(1, 64, 8, 8);
        var down = ControlNetDown();
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs, downBlockAdditionalResiduals: down[..5], midBlockAdditionalResidual: mid));
        Assert.Equal("UNet2DConditionModel: down_block_additional_residuals has 5 tensors, the UNet has 6 skip states (conv_in, then each down block's resnets and downsampler)", e.Message);
        down[3] = torch.zeros(1, 32, 16, 16);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs, downBlockAdditionalResiduals: down, midBlockAdditionalResidual: mid));
        Assert.Equal("UNet2DConditionModel: down_block_additional_residuals[3] has shape [1, 32, 16, 16], the skip state [1, 32, 8, 8]", e.Message);
    }

    /// <summary>
    /// diffusers' forward for this UNet written out with its own modules through the block contracts, adding the
    /// residuals by hand: <paramref name="addToSkips"/> to the skip states and <paramref name="addToMid"/> to the mid
    /// block's output (ControlNet), <paramref name="addToBlockOutput"/> to each down block's output (in place, so its
    /// last skip state too: valid here because block 1 is final, so its last attention output is its output).
    /// </summary>
    private static Tensor ByHand(UNet2DConditionModel unet, Tensor x, long t, Tensor ehs, Tensor[]? addToSkips = null,
        Tensor? addToMid = null, Tensor[]? addToBlockOutput = null)
    {
        var m = unet.named_modules().ToDictionary(p => p.name, p => p.module);
        using var timesteps = torch.tensor(new[] { t });
        var emb = ((TimestepEmbedding)m["time_embedding"]).Forward(((Timesteps)m["time_proj"]).Forward(timesteps));
        var context = new BlockContext { EncoderHiddenStates = ehs };
        var h = ((Conv2d)m["conv_in"]).forward(x);
        var skips = new List<Tensor> { h };
        for (int i = 0; i < 2; i++)
        {
            var (hidden, states) = ((UNetDownBlock)m[$"down_blocks.{i}"]).Forward(h, emb, context);
            if (addToBlockOutput is not null) hidden.add_(addToBlockOutput[i]);
            skips.AddRange(states);
            h = hidden;
        }
        if (addToSkips is not null)
            skips = skips.Select((s, j) => s + addToSkips[j]).ToList();
        h = ((UNetMidBlock)m["mid_block"]).Forward(h, emb, context);
        if (addToMid is not null) h = h + addToMid;
        for (int i = 0; i < 2; i++)
        {
            var block = (UNetUpBlock)m[$"up_blocks.{i}"];
            var res = skips.GetRange(skips.Count - block.NumResnets, block.NumResnets);
            skips.RemoveRange(skips.Count - block.NumResnets, block.NumResnets);
            h = block.Forward(h, res, emb, context);
        }
        h = nn.functional.silu(((GroupNorm)m["conv_norm_out"]).forward(h));
        return ((Conv2d)m["conv_out"]).forward(h);
    }
}
