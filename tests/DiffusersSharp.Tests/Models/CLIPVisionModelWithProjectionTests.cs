using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// <see cref="CLIPVisionModelWithProjection"/> and <see cref="CLIPImageProcessor"/> against the transcription of transformers
/// 4.36 in tests/golden/ip-adapter/make.py (its encoder layers reproduce the real transformers text encoder of tiny-sd
/// exactly; README there): the tiny image encoder folder, the image embeds, the last hidden state and every hidden state.
/// </summary>
public class CLIPVisionModelWithProjectionTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static CLIPVisionModelWithProjection Encoder() => CLIPVisionModelWithProjection.FromPretrained(Golden.Path("ip-adapter", "image_encoder"));

    [Fact]
    public void ThePngThroughTheProcessorAndTheEncoderGivesTransformersEmbedsAndEveryHiddenState()
    {
        using var _ = torch.no_grad();
        using var encoder = Encoder();
        var processor = CLIPImageProcessor.FromPretrained(Golden.Path("ip-adapter", "image_encoder"));
        var pixels = processor.Preprocess(Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png")));
        Tol.Close(pixels, G("processor/ip_image"), 1e-6, "pixel values");
        using var o = encoder.Forward(pixels, outputHiddenStates: true);
        Tol.Close(o.ImageEmbeds, G("encoder/image_embeds"), Tol.ModelAbs, "image_embeds");
        Tol.Close(o.LastHiddenState, G("encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
        Assert.Equal(4, o.HiddenStates!.Count);
        Tol.Close(torch.stack(o.HiddenStates), G("encoder/hidden_states"), Tol.ModelAbs, "hidden_states");
    }

    [Fact]
    public void ABatchOfTwoImagesGivesTheEmbedsAndPenultimateStatesOfEach()
    {
        using var _ = torch.no_grad();
        using var encoder = Encoder();
        var pixels = torch.cat([G("processor/ip_image"), torch.randn(1, 3, 32, 32, generator: new Generator(5))]);
        // the second image is torch's randn of seed 5, which TorchSharp's CPU generator draws the same
        using var o = encoder.Forward(pixels, outputHiddenStates: true);
        Tol.Close(o.ImageEmbeds, G("encoder/batch2_image_embeds"), Tol.ModelAbs, "image_embeds");
        Tol.Close(o.HiddenStates![^2], G("encoder/batch2_hidden_states_m2"), Tol.ModelAbs, "hidden_states[-2]");
        using var zeros = encoder.Forward(torch.zeros(1, 3, 32, 32), outputHiddenStates: true);
        Tol.Close(zeros.HiddenStates![^2], G("encoder/zeros_hidden_states_m2"), Tol.ModelAbs, "zeros image hidden_states[-2]");
    }

    [Fact]
    public void PixelValuesOfTheWrongSizeAreAClearError()
    {
        using var encoder = Encoder();
        var e = Assert.Throws<ArgumentException>(() => encoder.Forward(torch.zeros(1, 3, 24, 24)));
        Assert.Equal("CLIPVisionModelWithProjection expects pixel_values of shape [batch, 3, 32, 32] (num_channels, image_size), got [1, 3, 24, 24] (Parameter 'pixelValues')", e.Message);
    }

    [Fact]
    public void AConfigWithHeadsThatDoNotDivideTheWidthIsRefusedNamingTheFileAndKey()
    {
        string dir = Directory.CreateTempSubdirectory("clipvision").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Golden.Path("ip-adapter", "image_encoder", "config.json"))
                .Replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 5"));
            var e = Assert.Throws<DiffusersSharp.ConfigException>(() => CLIPVisionModelWithProjection.FromPretrained(dir));
            Assert.Equal($"{Path.Combine(dir, "config.json")}: hidden_size (32) must be divisible by num_attention_heads (5)", e.Message);
            Assert.Equal("hidden_size", e.Key);
        }
        finally { Directory.Delete(dir, true); }
    }
}
