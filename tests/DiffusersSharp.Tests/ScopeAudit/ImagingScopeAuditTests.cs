using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// The image conversions (<c>Imaging/</c>: the image processor, <c>.npy</c>), the previews and the tokenizer's tensors
/// run with no dispose scope open and leave no tensor made outside a scope (docs/ARCHITECTURE.md, "Tensor ownership";
/// <see cref="Support.ScopeAudit"/>).
/// </summary>
public class ImagingScopeAuditTests
{
    [Fact]
    public void TheImageConversionsRunTheirTensorWorkInADisposeScope()
    {
        using var dir = new TempDir();
        var image = Image.Load(Golden.Path("img2img-init.png"));
        var g = new Generator(7);
        var pt = torch.rand([2, 3, 16, 16], generator: g);
        var np = torch.rand([2, 16, 16, 3], generator: g);
        var audit = new Support.ScopeAudit();
        audit.Call("ImageProcessor.Normalize", () => ImageProcessor.Normalize(pt));
        audit.Call("ImageProcessor.Denormalize", () => ImageProcessor.Denormalize(pt));
        audit.Call("ImageProcessor.PtToNumpy", () => ImageProcessor.PtToNumpy(pt));
        audit.Call("ImageProcessor.NumpyToPt", () => ImageProcessor.NumpyToPt(np));
        audit.Call("ImageProcessor.NumpyToImages", () => ImageProcessor.NumpyToImages(np));
        audit.Call("ImageProcessor.ImagesToNumpy", () => ImageProcessor.ImagesToNumpy([image, image]));
        var signed = pt * 2 - 1;
        audit.Call("ImageProcessor.Postprocess", () => ImageProcessor.Postprocess(signed));
        audit.Call("ImageProcessor.Preprocess", () => ImageProcessor.Preprocess(image, 32, 32));
        audit.Call("ImageProcessor.Preprocess (list)", () => ImageProcessor.Preprocess([image, image]));
        audit.Call("NpyFile.ToBytes", () => NpyFile.ToBytes(np));
        audit.Call("NpyFile.Write", () => NpyFile.Write(dir.File("x.npy"), pt));
        audit.Call("NpyFile.Read", () => NpyFile.Read(dir.File("x.npy")));
        audit.AssertAllScoped();
    }

    [Fact]
    public void ThePreviewsAndTheTokenizersTensorsAreMadeInADisposeScope()
    {
        using var taesd = AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));
        var preview = new TaesdPreview(taesd, maxSize: 8);
        var latents = torch.randn([2, 4, 8, 8], generator: new Generator(2));
        var tokenizer = CLIPTokenizer.FromPretrained(Golden.Path("tiny-sd"), "tokenizer");
        var tokens = tokenizer.Call(["a photo of a cat", "a dog"]);
        var audit = new Support.ScopeAudit();
        audit.Call("TaesdPreview.Decode", () => preview.Decode(latents));
        audit.Call("TaesdPreview.Preview", () => preview.Preview(latents, 1));
        audit.Call("LatentRgbPreview.Preview", () => LatentRgbPreview.Preview(latents, 1));
        audit.Call("CLIPTokenizerOutput.InputIdsTensor", () => tokens.InputIdsTensor());
        audit.Call("CLIPTokenizerOutput.AttentionMaskTensor", () => tokens.AttentionMaskTensor());
        audit.AssertAllScoped();
    }
}
