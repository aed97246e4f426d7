using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <c>padding_mask_crop</c> of <see cref="StableDiffusionInpaintPipeline"/> on tiny-sd (a 4-channel UNet, as diffusers 0.25.1
/// asks): what the models see is the region diffusers computes, cut and fitted as diffusers' preprocessing does
/// (tests/golden/mask-crop, "pipeline"), and the result is the original image with the inpainted crop put back. No torch
/// run of diffusers' pipeline exists for it (torch is not importable where the golden data was made); the steps between
/// are the inpaint pipeline's, checked against diffusers in <see cref="StableDiffusionImg2ImgInpaintTests"/>.
/// </summary>
public class StableDiffusionInpaintMaskCropTests(ITestOutputHelper log)
{
    private static readonly Image Init = Image.Load(Golden.Path("img2img-init.png"));
    private static readonly Image Mask = Image.Load(Golden.Path("inpaint-mask.png"));

    private static JsonElement PipelineCase(int pad)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Golden.Path("mask-crop", "expected.json")));
        return json.RootElement.GetProperty("pipeline").EnumerateArray().Single(c => c.GetProperty("pad").GetInt32() == pad).Clone();
    }

    private static ImagePipelineOutput Run(StableDiffusionInpaintPipeline pipe, int? pad, int height, int width, ImageInput? image = null,
        ImageInput? mask = null, OutputType outputType = OutputType.Pil) =>
        pipe.Generate("a red ball", image ?? Init, mask ?? Mask, height: height, width: width, numInferenceSteps: 3, seed: 0,
            outputType: outputType, paddingMaskCrop: pad);

    [Theory]
    [InlineData(4, 64, 64)]   // region (12, 7, 48, 43), 36x36 → 64x64
    [InlineData(0, 32, 64)]   // region (2, 11, 58, 39), 56x28 → 64x32: the run's size is not the image's
    public void TheCropAroundTheMaskIsInpaintedAndPutBackIntoTheOriginal(int pad, int height, int width)
    {
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var trace = new SdTrace(pipe);
        using var result = Run(pipe, pad, height, width);
        var c = PipelineCase(pad);
        Assert.Equal((width, height), (c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32()));
        int[] r = c.GetProperty("region").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var region = new CropRegion(r[0], r[1], r[2], r[3]);

        // the models see diffusers' crop, fitted with "fill": the image in [-1, 1], the mask binarized
        var image = new Image(width, height, 3, Convert.FromBase64String(c.GetProperty("image").GetString()!));
        var mask = new Image(width, height, 1, Convert.FromBase64String(c.GetProperty("mask").GetString()!));
        using var expectedImage = ImageProcessor.Normalize(ImageProcessor.NumpyToPt(ImageProcessor.ImagesToNumpy([image])));
        using var expectedMask = ImageProcessor.NumpyToPt(ImageProcessor.ImagesToNumpy([mask])).ge(0.5).to(ScalarType.Float32);
        Assert.Equal(0.0, (trace.One("image_preprocessed") - expectedImage).abs().max().item<float>());
        Assert.Equal(0.0, (trace.One("mask_condition") - expectedMask).abs().max().item<float>());

        // the result: the original's size; outside the region, and wherever the mask is black, the original's pixels
        var output = Assert.Single(result.Images);
        Assert.Equal((64, 64, 3), (output.Width, output.Height, output.Channels));
        int changedInside = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
            {
                bool masked = Mask[x, y, 0] != 0;
                for (int ch = 0; ch < 3; ch++)
                {
                    if (!region.Contains(x, y) || !masked) Assert.Equal(Init[x, y, ch], output[x, y, ch]);
                    else if (Init[x, y, ch] != output[x, y, ch]) changedInside++;
                }
            }
        log.WriteLine($"pad {pad} at {width}x{height}: region {region}, {changedInside} masked values changed");
        Assert.True(changedInside > 1000, $"only {changedInside} values under the mask changed");
    }

    [Fact]
    public void WithoutTheCropTheSameRunRepaintsTheWholeImage()
    {
        // the same call without padding_mask_crop: every pixel comes from the VAE (none outside the mask is the original's),
        // so the two outputs differ outside the mask too, and under it (another image was inpainted)
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var cropped = Run(pipe, 4, 64, 64);
        using var whole = Run(pipe, null, 64, 64);
        var a = cropped.Images[0];
        var b = whole.Images[0];
        int outsideDiffers = 0, insideDiffers = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int ch = 0; ch < 3; ch++)
                    if (a[x, y, ch] != b[x, y, ch])
                    {
                        if (Mask[x, y, 0] == 0) outsideDiffers++;
                        else insideDiffers++;
                    }
        log.WriteLine($"differing values: {outsideDiffers} outside the mask, {insideDiffers} under it");
        Assert.True(outsideDiffers > 1000 && insideDiffers > 1000, $"{outsideDiffers} outside, {insideDiffers} inside");
    }

    [Fact]
    public void APaddingMaskCropRunOfABatchPutsEachImageBack()
    {
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var result = pipe.Generate("a red ball", Init, Mask, numImagesPerPrompt: 2, numInferenceSteps: 2, seed: 0, paddingMaskCrop: 4);
        Assert.Equal(2, result.Images.Count);
        Assert.All(result.Images, im => Assert.Equal((64, 64), (im.Width, im.Height)));
        Assert.NotEqual(result.Images[0].Pixels, result.Images[1].Pixels);
        Assert.Equal(Init[0, 0, 0], result.Images[1][0, 0, 0]);
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { "tensor image", "StableDiffusionInpaintPipeline: The image should be one Image (diffusers: a PIL image) when inpainting mask crop, but is a tensor." },
        { "image list", "StableDiffusionInpaintPipeline: The image should be one Image (diffusers: a PIL image) when inpainting mask crop, but is a list of 1 Image." },
        { "tensor mask", "StableDiffusionInpaintPipeline: The mask image should be one Image (diffusers: a PIL image) when inpainting mask crop, but is a tensor." },
        { "np output", "StableDiffusionInpaintPipeline: The output type should be Pil when inpainting mask crop, but is Np." },
        { "negative", "StableDiffusionInpaintPipeline: padding_mask_crop is a margin in pixels, 0 or more; got -1" },
        { "mask size", "StableDiffusionInpaintPipeline: padding_mask_crop finds the region in the mask and cuts it from the image, so they must have one size: the image is 64x64, the mask 32x32" },
        { "black mask", "StableDiffusionInpaintPipeline: padding_mask_crop: GetCropRegion: the mask has no masked (non-black) pixel, and a padding of 2 gives no region to crop (62, 62, 2, 2)" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void PaddingMaskCropIsRefusedWhereDiffusersRefusesIt(string what, string message)
    {
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var tensor = torch.rand(1, 3, 64, 64);
        using var maskTensor = torch.rand(1, 1, 64, 64);
        var e = Assert.Throws<DiffusersException>(() => what switch
        {
            "tensor image" => Run(pipe, 4, 64, 64, image: tensor),
            "image list" => Run(pipe, 4, 64, 64, image: new[] { Init }),
            "tensor mask" => Run(pipe, 4, 64, 64, mask: maskTensor),
            "np output" => Run(pipe, 4, 64, 64, outputType: OutputType.Np),
            "negative" => Run(pipe, -1, 64, 64),
            "mask size" => Run(pipe, 4, 64, 64, mask: ImageResize.Resize(Mask, 32, 32)),
            "black mask" => Run(pipe, 2, 64, 64, mask: new Image(64, 64, 1, new byte[64 * 64])),
            _ => throw new ArgumentException(what),
        });
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void ANineChannelInpaintingUNetIsRefusedAsDiffusers025Does()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path);
        var e = Assert.Throws<DiffusersException>(() => Run(pipe, 4, 64, 64));
        Assert.Equal("StableDiffusionInpaintPipeline: The UNet should have 4 input channels for inpainting mask crop, but has 9 input channels.", e.Message);
    }
}
