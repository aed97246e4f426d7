using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The ControlNet pipelines refuse what does not fit, with messages naming what is wrong (and before any step runs).</summary>
public class StableDiffusionControlNetBadInputTests
{
    private static DiffusersException Refused(Action call) => Assert.Throws<DiffusersException>(call);

    [Fact]
    public void ControlImagesScalesAndWindowsMustMatchTheNets()
    {
        using var pipe = StableDiffusionControlNetPipelineTests.LoadTxt2Img(nets: 2);
        var edges = StableDiffusionControlNetPipelineTests.Edges;
        Assert.Equal(
            "StableDiffusionControlNetPipeline: `image` must have the same length as the number of controlnets, but got 1 images and 2 ControlNets.",
            Refused(() => pipe.Generate("a cat", [edges], numInferenceSteps: 1)).Message);
        Assert.Equal(
            "StableDiffusionControlNetPipeline: controlnet_conditioning_scale has 3 values, but there are 2 ControlNets; pass one value, or one per net",
            Refused(() => pipe.Generate("a cat", [edges, edges], numInferenceSteps: 1, controlnetConditioningScale: [1.0, 0.5, 0.2])).Message);
        Assert.Equal(
            "StableDiffusionControlNetPipeline: control_guidance_start has 3 values, but there are 2 ControlNets; pass one value, or one per net",
            Refused(() => pipe.Generate("a cat", [edges, edges], numInferenceSteps: 1, controlGuidanceStart: [0.0, 0.1, 0.2])).Message);
        Assert.Equal(
            "StableDiffusionControlNetPipeline: control guidance start: 0.5 cannot be larger or equal to control guidance end: 0.5.",
            Refused(() => pipe.Generate("a cat", [edges, edges], numInferenceSteps: 1, controlGuidanceStart: [0.5], controlGuidanceEnd: [0.5])).Message);
        Assert.Equal("StableDiffusionControlNetPipeline: control guidance end: 1.5 can't be larger than 1.0.",
            Refused(() => pipe.Generate("a cat", [edges, edges], numInferenceSteps: 1, controlGuidanceEnd: [1.5])).Message);
        Assert.Equal("StableDiffusionControlNetPipeline: a image is required for each of the 2 ControlNet(s)",
            Refused(() => pipe.Generate("a cat", numInferenceSteps: 1)).Message);
    }

    [Fact]
    public void AControlNetMadeForAnotherModelIsRefused()
    {
        using var good = ControlNetModelGoldenTests.LoadTiny();
        var cross = Assert.Throws<ConfigException>(() =>
            StableDiffusionControlNetPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModel.FromConfig(good.Config with { CrossAttentionDim = 16 })));
        Assert.Equal("cross_attention_dim", cross.Key);
        Assert.Equal("ControlNet 0 has cross_attention_dim 16, but the UNet's is [32] and the text encoder's hidden_size 32: the ControlNet was made for another model", cross.Message);

        var blocks = Assert.Throws<ConfigException>(() =>
            StableDiffusionControlNetPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModel.FromConfig(good.Config with { LayersPerBlock = 1 })));
        Assert.Equal("block_out_channels", blocks.Key);
        Assert.Contains("ControlNet 0 gives 4 residuals for block_out_channels [32, 64], but the UNet has 6 skip states", blocks.Message);
    }

    [Fact]
    public void MultiControlNetModelChecksItsArguments()
    {
        using var a = ControlNetModelGoldenTests.LoadTiny();
        using var other = ControlNetModel.FromConfig(a.Config with { BlockOutChannels = [32, 32] });
        var e = Assert.Throws<ArgumentException>(() => new MultiControlNetModel([a, other]));
        Assert.Contains("ControlNet 1 gives 6 residuals of block_out_channels [32, 32], ControlNet 0 6 of [32, 64]", e.Message);
        using var multi = new MultiControlNetModel([a, a]);
        using var x = torch.zeros(1, 4, 8, 8);
        using var ehs = torch.zeros(1, 77, 32);
        using var cond = torch.zeros(1, 3, 16, 16);
        Assert.Equal("MultiControlNetModel: 1 control images for 2 ControlNets; pass one per net",
            Assert.Throws<ArgumentException>(() => multi.Forward(x, 10L, ehs, [cond], [1.0, 1.0])).Message);
        Assert.Equal("MultiControlNetModel: 1 conditioning scales for 2 ControlNets; pass one per net",
            Assert.Throws<ArgumentException>(() => multi.Forward(x, 10L, ehs, [cond, cond], [1.0])).Message);
        using var wrongSize = torch.zeros(1, 3, 16, 12);
        Assert.Equal("ControlNetModel: the control image is 12x16, but the latents are 8x8; the conditioning embedding halves the image 1 times, so it must be 16x16",
            Assert.Throws<ArgumentException>(() => multi.Forward(x, 10L, ehs, [cond, wrongSize], [1.0, 1.0])).Message);
    }

    [Fact]
    public void AGreyscaleControlImageIsConvertedToRgb()
    {
        using var pipe = StableDiffusionControlNetPipelineTests.LoadTxt2Img();
        using var trace = new SdTrace(pipe);
        var grey = DiffusersSharp.Pipelines.ImageInput.ToGray(StableDiffusionControlNetPipelineTests.Scribble);
        Assert.Equal(1, grey.Channels);
        using var result = pipe.Generate("a cat", [grey], numInferenceSteps: 1, seed: 0, outputType: OutputType.Np);
        var control = trace.First("control_image");
        Assert.Equal(new long[] { 2, 3, 64, 64 }, control.shape);
        using var expected = torch.tensor(grey.Pixels.Select(b => b / 255f).ToArray()).reshape(1, 1, 64, 64).expand(2, 3, 64, 64);
        Assert.Equal(0.0, Tol.MaxAbsDiff(control, expected));
    }

    [Fact]
    public void InpaintImagesAndMasksMustFitTheBatch()
    {
        // diffusers keeps more images or masks than the batch and fails in the ControlNet; at strength < 1 images that do
        // not divide the batch fail on adding the noise: refused here, in diffusers' words where it has them
        using var pipe = StableDiffusionControlNetInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModelGoldenTests.LoadTiny());
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        var edges = StableDiffusionControlNetPipelineTests.Edges;
        Assert.Equal("StableDiffusionControlNetInpaintPipeline: 2 images for a total batch size of 1 (prompts × images per prompt); pass a number of images that divides 1",
            Refused(() => pipe.Generate("a", new[] { init, init }, mask, [edges], numInferenceSteps: 2, seed: 0)).Message);
        Assert.Equal("StableDiffusionControlNetInpaintPipeline: 2 masks for a total batch size of 1 (prompts × images per prompt); pass a number of masks that divides 1",
            Refused(() => pipe.Generate("a", init, new[] { mask, mask }, [edges], numInferenceSteps: 2, seed: 0)).Message);
        Assert.Equal("StableDiffusionControlNetInpaintPipeline: The passed images and the required batch size don't match: 2 images cannot be duplicated to a total batch size of 3.",
            Refused(() => pipe.Generate(new[] { "a", "b", "c" }, new[] { init, init }, mask, [edges], strength: 0.5, numInferenceSteps: 2, seed: 0)).Message);
    }
}
