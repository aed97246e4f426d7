using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>diffusers' <c>VaeImageProcessor.preprocess</c> on the shapes of tensor inputs the mask processor accepts.</summary>
public class ImageInputTests
{
    [Fact]
    public void AMaskTensorOfHeightByWidthIsOneMaskOfOneChannel()
    {
        // diffusers' mask_processor stacks a 2-D tensor to [1, H, W], then inserts the channel: [1, 1, H, W]
        using var mask = torch.tensor(new float[] { 0f, 0.2f, 0.5f, 0.7f, 1f, 0.49f }, new long[] { 2, 3 });
        using var fromHw = ((ImageInput)mask).Preprocess("mask image", null, null, 1, normalize: false, grayscale: true, binarize: true);
        using var fromNchw = ((ImageInput)mask.reshape(1, 1, 2, 3)).Preprocess("mask image", null, null, 1, normalize: false, grayscale: true, binarize: true);
        Assert.Equal(new long[] { 1, 1, 2, 3 }, fromHw.shape);
        Assert.Equal(new float[] { 0, 0, 1, 1, 1, 0 }, fromHw.data<float>().ToArray());
        Assert.True(fromHw.equal(fromNchw).all().item<bool>());
        using var flat = torch.zeros(6);
        var e = Assert.Throws<DiffusersException>(() => ((ImageInput)flat).Preprocess("mask image", null, null, 1, normalize: false, grayscale: true, binarize: true));
        Assert.Equal("a mask image tensor must be [H, W], [B, H, W] or [B, 1, H, W], got [6]", e.Message);
    }

    [Fact]
    public void ATensorWithoutPixelsIsRefused()
    {
        // diffusers fails on image.min() of the empty tensor (an image) or divides by its batch of 0 (a mask)
        using var images = torch.zeros(0, 3, 64, 64);
        var e = Assert.Throws<DiffusersException>(() => ((ImageInput)images).Preprocess("init image", null, null, 8, normalize: true, grayscale: false, binarize: false));
        Assert.Equal("the init image tensor holds no pixels: shape [0, 3, 64, 64]", e.Message);
        using var masks = torch.zeros(0, 64, 64);
        e = Assert.Throws<DiffusersException>(() => ((ImageInput)masks).Preprocess("mask image", 64, 64, 8, normalize: false, grayscale: true, binarize: true));
        Assert.Equal("the mask image tensor holds no pixels: shape [0, 1, 64, 64]", e.Message);
    }
}
