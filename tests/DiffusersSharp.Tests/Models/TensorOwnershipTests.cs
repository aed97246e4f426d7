using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The ownership rule (docs/ARCHITECTURE.md, "Tensor ownership"): a call owns what it returns and never disposes its
/// arguments; the caller disposes what it no longer needs, at once. Checked by counting this thread's live tensors
/// (TorchSharp's per-thread statistics) at every stage of a forward pass.
/// </summary>
public class TensorOwnershipTests
{
    private static long Live => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [Fact]
    public void UNet2DConditionModel_KeepsExactlyTheSkipStatesAliveAndFreesEachOnceConsumed()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var x = torch.randn(1, 4, 16, 16);
        using var ehs = torch.randn(1, 5, 32);
        using (unet.Forward(x, 10L, ehs).Sample) { } // warm up
        var live = new Dictionary<string, long>();
        unet.IntermediateHook = (name, _) => live[name] = Live;
        long before = Live;
        using (var y = unet.Forward(x, 10L, ehs).Sample)
        {
            unet.IntermediateHook = null;
            Assert.Equal(before + 1, Live); // only the output outlives the call
        }
        Assert.Equal(before, Live);

        // down: each block adds exactly its output states (DownBlock2D: 2 resnets + downsampler; the final
        // CrossAttnDownBlock2D: 2 attention outputs); nothing else of a block stays alive
        Assert.Equal(3, live["down_blocks.0"] - live["conv_in"]);
        Assert.Equal(2, live["down_blocks.1"] - live["down_blocks.0"]);
        Assert.Equal(1, live["mid_block"] - live["down_blocks.1"]); // its input is a skip state, kept
        // up: each block's output replaces its input; the 3 skip states it consumed are freed right after it
        Assert.Equal(0, live["up_blocks.0"] - live["mid_block"]);
        Assert.Equal(-3, live["up_blocks.1"] - live["up_blocks.0"]);
        Assert.Equal(-3, live["conv_norm_out"] - live["up_blocks.1"]);
    }

    [Fact]
    public void UNet2DModel_AndTheVaeDecoder_LeaveOnlyTheirOutputAlive()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), subfolder: "unet");
        using var x = torch.randn(1, unet.Config.InChannels, 32, 32);
        using (unet.Forward(x, 10L).Sample) { }
        long before = Live;
        using (unet.Forward(x, 10L).Sample)
            Assert.Equal(before + 1, Live);
        Assert.Equal(before, Live);

        using var vae = AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), subfolder: "vae");
        using var z = torch.randn(1, 4, 8, 8);
        using var zCopy = z.clone();
        using (vae.Decode(z).Sample) { }
        before = Live;
        using (vae.Decode(z).Sample)
            Assert.Equal(before + 1, Live);
        Assert.Equal(before, Live);
        Assert.Equal(0.0, Tol.MaxAbsDiff(z, zCopy)); // the decoder hands over only its own intermediates
    }

    [Fact]
    public void GroupNormsAndZeroedModulesAreBuiltWithoutLeavingATensorToTheFinalizer()
    {
        // TorchSharp 0.107's zero_() returns a new tensor: Layers.GroupNorm and ControlNetModel.ZeroModule fill with a zero
        // instead, so building and disposing them leaves the thread's live tensors as they were (+1 per GroupNorm and
        // +1 per zeroed parameter before)
        long before = Live;
        using (var gn = Layers.GroupNorm(4, 8, 1e-5))
        using (var linear = ControlNetModel.ZeroModule(nn.Linear(3, 5)))
        using (torch.NewDisposeScope())
        {
            Assert.Equal(Enumerable.Repeat(1f, 8), gn.weight!.data<float>().ToArray());
            Assert.Equal(new float[8], gn.bias!.data<float>().ToArray());
            Assert.All(linear.parameters(), p => Assert.Equal(new float[p.numel()], p.data<float>().ToArray()));
        }
        Assert.Equal(before, Live);
    }

    [Fact]
    public void EveryRegisteredBlock_LeavesItsInputsAloneAndReturnsOnlyWhatItHandsOut()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(3);
        var args = new UNetBlockArgs
        {
            NumLayers = 2, InChannels = 8, OutChannels = 16, PrevOutputChannel = 16, TembChannels = 12, ResnetGroups = 4,
            CrossAttentionDim = 6, NumAttentionHeads = 2, AttentionHeadDim = 4, AddDownsample = true, AddUpsample = true,
        };
        using var temb = torch.randn(2, 12);
        using var ehs = torch.randn(2, 3, 6);
        var context = new BlockContext { EncoderHiddenStates = ehs };
        // the K blocks (32-channel groups, no downsampler state) are held by KUNetGoldenTests' ownership case
        foreach (var type in UNet2DBlocks.DownBlockTypes().Where(t => !UNet2DBlocks.OwnsNormGroups(t)))
        {
            using var block = UNet2DBlocks.GetDownBlock(type, args);
            Assert.Equal(type, block.GetType().Name);
            using var x = torch.randn(2, 8, 8, 8);
            using var copy = x.clone();
            long before = Live;
            var (h, states) = block.Forward(x, temb, context);
            Assert.Equal(3, states.Length);                  // 2 layers + the downsampler
            Assert.Same(states[^1], h);
            Assert.Equal(before + 3, Live);                  // nothing but the states stays alive
            Assert.False(x.IsInvalid);
            Assert.Equal(0.0, Tol.MaxAbsDiff(x, copy));
            foreach (var s in states) s.Dispose();
        }
        foreach (var type in UNet2DBlocks.UpBlockTypes().Where(t => !UNet2DBlocks.OwnsNormGroups(t)))
        {
            using var block = UNet2DBlocks.GetUpBlock(type, args with { InChannels = 8 });
            Assert.Equal(type, block.GetType().Name);
            Assert.Equal(2, block.NumResnets);
            using var x = torch.randn(2, 16, 4, 4);
            using var copy = x.clone();
            var skips = new[] { torch.randn(2, 8, 4, 4), torch.randn(2, 16, 4, 4) };
            long before = Live;
            using (var y = block.Forward(x, skips, temb, context))
            {
                Assert.Equal(new long[] { 2, 16, 8, 8 }, y.shape);
                Assert.Equal(before + 1, Live);
            }
            Assert.False(x.IsInvalid);
            Assert.All(skips, s => Assert.False(s.IsInvalid));
            Assert.Equal(0.0, Tol.MaxAbsDiff(x, copy));
            foreach (var s in skips) s.Dispose();
        }
        foreach (var type in UNet2DBlocks.MidBlockTypes)
        {
            using var block = UNet2DBlocks.GetMidBlock(type, args with { InChannels = 16 });
            using var x = torch.randn(2, 16, 4, 4);
            using var copy = x.clone();
            long before = Live;
            using (block.Forward(x, temb, context))
                Assert.Equal(before + 1, Live);
            Assert.Equal(0.0, Tol.MaxAbsDiff(x, copy));
        }
    }

    [Fact]
    public void AHandedOverInput_IsFreedByTheCallee()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(4);
        using var resnet = new ResnetBlock2D(8, 16, tembChannels: null, groups: 4);
        var x = torch.randn(1, 8, 6, 6);
        using var kept = resnet.Forward(x, null);
        using var consumed = resnet.Forward(x, null, consumeInput: true);
        Assert.True(x.IsInvalid);
        Assert.Equal(0.0, Tol.MaxAbsDiff(consumed, kept));
    }

    /// <summary>
    /// A channel-halving block given its input (the VAE decoder's first block at each new width) runs conv1 and conv2 in
    /// the input's memory where both take the Winograd path: the same output, bit for bit, and afterwards that memory holds
    /// conv2's output after conv1's (the output is the shortcut plus it). Elsewhere (DIFFUSERS_SHARP_NO_WINOGRAD, no
    /// AVX-512) only the first.
    /// </summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void AChannelHalvingBlock_ConvolvesInTheMemoryOfItsHandedOverInput(ScalarType dtype)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var resnet = new ResnetBlock2D(256, 128, tembChannels: 64, groups: 32);
        resnet.to(dtype);
        var temb = torch.randn(1, 64).to(dtype);
        var x = Layers.ToChannelsLast(torch.randn(1, 256, 16, 16)).to(dtype);
        var expected = resnet.Forward(x, temb);
        var input = Layers.ToChannelsLast(x.contiguous());   // a copy of x, handed over
        var memory = input.as_strided([16 * 16 * 256], [1]);   // keeps the input's memory readable after the block frees it
        var got = resnet.Forward(input, temb, consumeInput: true);
        Assert.True(input.IsInvalid);
        Assert.True(got.equal(expected).all().item<bool>(), $"max |diff| {Tol.MaxAbsDiff(got.to(ScalarType.Float64), expected.to(ScalarType.Float64))}");

        string status = WinogradConvolution.Status;
        if (status != "bf16, fp32" && !(dtype == ScalarType.Float32 && status.StartsWith("fp32")))
            return;   // the Winograd path does not run this dtype here: nothing else to see
        var state = resnet.state_dict();
        var shortcut = nn.functional.conv2d(x.to(ScalarType.Float64), state["conv_shortcut.weight"].to(ScalarType.Float64),
            state["conv_shortcut.bias"].to(ScalarType.Float64));
        var conv2 = memory[(16 * 16 * 128)..].view(1, 16, 16, 128).permute(0, 3, 1, 2).to(ScalarType.Float64);
        double scale = got.to(ScalarType.Float64).abs().max().item<double>();
        double diff = Tol.MaxAbsDiff(conv2 + shortcut, got.to(ScalarType.Float64));
        Assert.True(diff < scale * (dtype == ScalarType.BFloat16 ? 2e-2 : 1e-5), $"the input's memory after conv1's output: max |conv2 + shortcut - output| {diff} of {scale}");
    }
}
