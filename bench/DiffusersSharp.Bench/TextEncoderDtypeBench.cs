using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- text-bf16</c>: how far bf16 moves the prompt embeddings (last_hidden_state) from fp32, for the tiny-sd text
/// encoder (its real test weights) and an SD-1.5-sized CLIP text model with random weights (TorchSharp's default
/// initialisation, so a weak stand-in for trained CLIP, whose activations have larger outliers). Same weights, rounded
/// to bf16; max |Δ|, the largest |value| and the mean |Δ| over a few prompts.
/// </summary>
public static class TextEncoderDtypeBench
{
    private static readonly string[] Prompts =
    [
        "a photo of a cat", "an astronaut riding a horse on the moon, highly detailed, 8k",
        "", "a watercolor painting of a lighthouse at dawn",
    ];

    /// <summary>Prints the bf16-vs-fp32 embedding differences of both text encoders.</summary>
    public static int Run()
    {
        string root = E2eConfigs.RepoRoot();
        string tiny = Path.Combine(root, "tests", "golden", "tiny-sd");
        using (var text = CLIPTextModel.FromPretrained(tiny, "text_encoder"))
            Compare("tiny-sd text encoder (test weights)", text, CLIPTokenizer.FromPretrained(tiny, "tokenizer"));
        torch.manual_seed(0);
        var config = ConfigJson.Parse<CLIPTextConfig>("""
            { "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu" }
            """, "sd15 text encoder");
        using (var text = new CLIPTextModel(config))
            Compare("SD 1.5-sized CLIP text model (random weights)", text, CLIPTokenizer.FromPretrained(Path.Combine(root, "tests", "golden", "clip-tokenizer")));
        return 0;
    }

    private static void Compare(string name, CLIPTextModel text, CLIPTokenizer tokenizer)
    {
        text.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var ids = tokenizer.Call(Prompts, PaddingStrategy.MaxLength, tokenizer.ModelMaxLength, truncation: true).InputIdsTensor(CPU);
        var fp32 = text.Forward(ids).LastHiddenState.clone();
        text.to(ScalarType.BFloat16);
        var bf16 = text.Forward(ids).LastHiddenState.to(ScalarType.Float32);
        text.to(ScalarType.Float32);
        var diff = (bf16 - fp32).abs();
        Console.WriteLine($"{name}: last_hidden_state {string.Join("x", fp32.shape)}; max |fp32| {fp32.abs().max().item<float>():F3}, " +
                          $"max |bf16 - fp32| {diff.max().item<float>():F4}, mean |Δ| {diff.mean().item<float>():E2}, " +
                          $"max relative to the row's max |value| {(diff / fp32.abs().amax(new long[] { -1 }, keepdim: true)).max().item<float>():F4}");
    }
}
