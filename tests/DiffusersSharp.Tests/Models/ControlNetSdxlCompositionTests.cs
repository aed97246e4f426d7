using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// SDXL ControlNet has no golden data: it is tested by composition on a ControlNet made by <see cref="ControlNetModel.FromUnet"/>
/// from the tiny SDXL UNet (golden tiny-sdxl/unet). Its down path with SDXL's "text_time" embedding is the UNet's own (with
/// the UNet's add_embedding copied in, which diffusers' from_unet leaves random); the residuals the denoising loop's
/// ControlNet strategy hands the UNet, with and without guess mode, are a standalone forward's; and a fresh from_unet net
/// (zero convolutions) leaves the UNet's prediction unchanged.
/// </summary>
public class ControlNetSdxlCompositionTests
{
    // the same maths on the same weights, in another module: the float results may differ in the last bits only
    private const double SamePath = 1e-6;

    private sealed class Setup : IDisposable
    {
        public UNet2DConditionModel Unet { get; } = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), subfolder: "unet");
        public ControlNetModel Net { get; }
        public Tensor Latents { get; }
        public Tensor Embeds { get; }      // [negative; prompt]
        public AddedCondKwargs Added { get; }
        public Tensor Image { get; }       // one control image, 8× the latent size

        public Setup()
        {
            Net = ControlNetModel.FromUnet(Unet);
            var gen = new Generator(17);
            Latents = torch.randn([1, 4, 8, 8], generator: gen);
            Embeds = torch.randn([2, 7, 48], generator: gen);
            Added = new AddedCondKwargs(torch.randn([2, 24], generator: gen),
                torch.tensor(new float[] { 64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64 }).reshape(2, 6));
            Image = torch.rand([1, 3, 64, 64], generator: gen);
        }

        /// <summary>Gives the net the UNet's add_embedding and random conditioning / zero convolutions.</summary>
        public void Perturb()
        {
            using var noGrad = torch.no_grad();
            var unetWeights = Unet.state_dict();
            var gen = new Generator(5);
            foreach (var (name, p) in Net.named_parameters())
            {
                if (name.StartsWith("add_embedding.", StringComparison.Ordinal)) p.copy_(unetWeights[name]);
                else if (name.StartsWith("controlnet_", StringComparison.Ordinal)) p.copy_(torch.randn(p.shape, generator: gen) * 0.1);
            }
        }

        public void Dispose()
        {
            Unet.Dispose();
            Net.Dispose();
            Latents.Dispose();
            Embeds.Dispose();
            Image.Dispose();
        }
    }

    [Fact]
    public void FromUnetBuildsTheSdxlTextTimeControlNet()
    {
        using var s = new Setup();
        var c = s.Net.Config;
        Assert.Equal("text_time", c.AdditionEmbedType);
        Assert.Equal(8, c.AdditionTimeEmbedDim);
        Assert.Equal(72, c.ProjectionClassEmbeddingsInputDim);
        Assert.Equal(48, c.CrossAttentionDim);
        Assert.Equal(new TransformerDepth[] { 1, 1, 2 }, c.TransformerLayersPerBlock);
        Assert.True(c.UseLinearProjection);
        Assert.Equal(9, s.Net.NumDownResiduals);
        var p = s.Net.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 32, 72 }, p["add_embedding.linear_1.weight"]);
        Assert.Equal(new long[] { 8, 256, 3, 3 }, p["controlnet_cond_embedding.conv_out.weight"]);
    }

    [Fact]
    public void TheControlNetsDownPathWithTextTimeIsTheUNets()
    {
        using var _ = torch.no_grad();
        using var s = new Setup();
        s.Perturb();
        // the conditioning embedding's last conv back to zero: conv_in(x) + 0 is the UNet's conv_in(x)
        foreach (var (name, p) in s.Net.named_parameters())
            if (name.StartsWith("controlnet_cond_embedding.conv_out", StringComparison.Ordinal)) p.zero_();
        using var x = torch.cat(new[] { s.Latents, s.Latents });
        Tensor? controlMid = null, unetMid = null;
        s.Net.Hook = (name, t) => { if (name == "mid_block") controlMid = t.clone().DetachFromDisposeScope(); };
        s.Unet.IntermediateHook = (name, t) => { if (name == "mid_block") unetMid = t.clone().DetachFromDisposeScope(); };
        using var image = torch.cat(new[] { s.Image, s.Image });
        using var output = s.Net.Forward(x, 500L, s.Embeds, image, addedCondKwargs: s.Added);
        using var sample = s.Unet.Forward(x, 500L, s.Embeds, addedCondKwargs: s.Added).Sample;
        s.Net.Hook = null;
        s.Unet.IntermediateHook = null;
        Tol.Close(controlMid!, unetMid!, SamePath, "ControlNet mid block vs the UNet's");
        Assert.True(Tol.MaxAbsDiff(controlMid!, torch.zeros_like(controlMid!)) > 1e-3);
        controlMid!.Dispose();
        unetMid!.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheResidualsTheLoopHandsTheUNetAreAStandaloneForwards(bool guessMode)
    {
        using var _ = torch.no_grad();
        using var s = new Setup();
        s.Perturb();
        using var scheduler = SchedulerFactory.FromPretrained(Golden.Path("tiny-sdxl"), "scheduler");
        scheduler.SetTimesteps(4);
        var ctx = new DenoisingContext("test", scheduler, scheduler.Timesteps, s.Latents.clone());
        ctx.Tensors[GuidedDenoisingLoop.PromptEmbedsKey] = s.Embeds;
        using var image = guessMode ? s.Image.clone() : torch.cat(new[] { s.Image, s.Image });
        using var multi = new MultiControlNetModel([s.Net]);
        var strategy = new ControlNetResiduals(multi, [image], [0.7], [0.0], [1.0], guessMode, doClassifierFreeGuidance: true);
        var t = scheduler.Timesteps[1];
        using var scaled = scheduler.ScaleModelInput(torch.cat(new[] { s.Latents, s.Latents }), ctx.TimestepValues[1]);
        using var fromLoop = strategy.Compute(ctx, 1, t, s.Latents, scaled, s.Added);

        using var standalone = guessMode
            ? s.Net.Forward(scaled.chunk(2)[1], t, s.Embeds.chunk(2)[1], image, 0.7,
                addedCondKwargs: new AddedCondKwargs(s.Added.TextEmbeds!.chunk(2)[1], s.Added.TimeIds!.chunk(2)[1]), guessMode: true)
            : s.Net.Forward(scaled, t, s.Embeds, image, 0.7, addedCondKwargs: s.Added);
        for (int j = 0; j < 9; j++)
        {
            var received = fromLoop.DownBlockResSamples[j];
            Assert.Equal(2, received.shape[0]);
            if (guessMode)
            {
                Assert.Equal(0.0, received.chunk(2)[0].abs().max().item<float>());
                Assert.Equal(0.0, Tol.MaxAbsDiff(received.chunk(2)[1], standalone.DownBlockResSamples[j]));
            }
            else Assert.Equal(0.0, Tol.MaxAbsDiff(received, standalone.DownBlockResSamples[j]));
        }
        Assert.Equal(0.0, Tol.MaxAbsDiff(guessMode ? fromLoop.MidBlockResSample.chunk(2)[1] : fromLoop.MidBlockResSample, standalone.MidBlockResSample));

        // the UNet consumes them: its prediction changes
        using var with = s.Unet.Forward(scaled, t, s.Embeds, addedCondKwargs: s.Added,
            downBlockAdditionalResiduals: fromLoop.DownBlockResSamples, midBlockAdditionalResidual: fromLoop.MidBlockResSample).Sample;
        using var without = s.Unet.Forward(scaled, t, s.Embeds, addedCondKwargs: s.Added).Sample;
        Assert.True(Tol.MaxAbsDiff(with, without) > 1e-4);
        ctx.Latents.Dispose();
    }

    [Fact]
    public void AFreshFromUnetControlNetLeavesTheUNetUnchanged()
    {
        using var _ = torch.no_grad();
        using var s = new Setup();
        using var x = torch.cat(new[] { s.Latents, s.Latents });
        using var image = torch.cat(new[] { s.Image, s.Image });
        using var output = s.Net.Forward(x, 300L, s.Embeds, image, addedCondKwargs: s.Added);
        using var with = s.Unet.Forward(x, 300L, s.Embeds, addedCondKwargs: s.Added,
            downBlockAdditionalResiduals: output.DownBlockResSamples, midBlockAdditionalResidual: output.MidBlockResSample).Sample;
        using var without = s.Unet.Forward(x, 300L, s.Embeds, addedCondKwargs: s.Added).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(with, without));
    }
}
