using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// CLIP text encoder config variants the golden tiny text encoders lack (SD 2.x's gelu with the legacy eos_token_id 2 and
/// argmax pooling, a real eos id with a layer_norm_eps of 1e-3 and inputs shorter than max_position_embeddings or
/// without eos, SDXL's second encoder with a projection_dim other than hidden_size, the attention mask of
/// use_attention_mask configs with float16 weights, every hidden_act transformers' ACT2FN gives CLIP): each clip-* folder of
/// golden/model-transcripts-clip-taesd loaded with <see cref="CLIPTextModel.FromPretrained"/> or
/// <see cref="CLIPTextModelWithProjection.FromPretrained"/>, against a numpy transcription of transformers 4.36's
/// modeling_clip.py validated on the golden tiny text encoders (that folder's README). <see cref="Tol.ModelAbs"/> as
/// the golden text-encoder tests.
/// </summary>
public class CLIPTextTranscriptTests(ITestOutputHelper log)
{
    private static readonly TranscriptFolder Transcript = new("model-transcripts-clip-taesd");

    /// <summary>Every CLIP case of cases.json: (variant/case id, variant folder, with projection).</summary>
    public static TheoryData<string, string, bool> Cases()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (var c in Transcript.Cases("clip_cases"))
            data.Add(c.GetProperty("id").GetString()!, c.GetProperty("model").GetString()!, c.GetProperty("projection").GetBoolean());
        return data;
    }

    private void Check(string what, Tensor actual, Tensor expected) => TranscriptFolder.Close(log, what, actual, expected);

    [Theory, MemberData(nameof(Cases))]
    public void ForwardWithHiddenStatesMatchesTheTransformersTranscript(string id, string model, bool projection)
    {
        using var _ = torch.no_grad();
        using var golden = Transcript.Open();
        using var ids = golden.Load(id + "/input_ids");
        using var mask = golden.Contains(id + "/attention_mask") ? golden.Load(id + "/attention_mask") : null;
        using var hidden = golden.Load(id + "/hidden_states");
        using var last = golden.Load(id + "/last_hidden_state");
        using var normedPenultimate = golden.Load(id + "/final_layer_norm_penultimate");
        string folder = Transcript.Path(model);
        IReadOnlyList<Tensor> states;
        Tensor lastHidden, pooled;
        Func<Tensor, Tensor> finalLayerNorm;
        IDisposable owner, output;
        if (projection)
        {
            var encoder = CLIPTextModelWithProjection.FromPretrained(folder);
            Assert.Equal(ScalarType.Float32, encoder.Dtype);   // float16 files too, as transformers without torch_dtype
            var o = encoder.Forward(ids, mask, outputHiddenStates: true);
            (owner, output, states, lastHidden, pooled, finalLayerNorm) = (encoder, o, o.HiddenStates!, o.LastHiddenState, o.TextEmbeds, encoder.FinalLayerNorm);
        }
        else
        {
            var encoder = CLIPTextModel.FromPretrained(folder);
            Assert.Equal(ScalarType.Float32, encoder.Dtype);
            var o = encoder.Forward(ids, mask, outputHiddenStates: true);
            (owner, output, states, lastHidden, pooled, finalLayerNorm) = (encoder, o, o.HiddenStates!, o.LastHiddenState, o.PoolerOutput, encoder.FinalLayerNorm);
        }
        using (owner)
        using (output)
        {
            Check($"{id}: last_hidden_state", lastHidden, last);
            using var expectedPooled = golden.Load(id + (projection ? "/text_embeds" : "/pooler_output"));
            Check($"{id}: {(projection ? "text_embeds" : "pooler_output")}", pooled, expectedPooled);
            Assert.Equal(hidden.shape[0], states.Count);   // embeddings, then every layer
            for (int i = 0; i < states.Count; i++)
            {
                using var e = hidden[i];
                Check($"{id}: hidden_states[{i}]", states[i], e);
            }
            // SD's clip_skip 1: final_layer_norm(hidden_states[-2]); SDXL's penultimate: hidden_states[-2] as is (above)
            using var normed = finalLayerNorm(states[^2]);
            Check($"{id}: final_layer_norm(hidden_states[-2])", normed, normedPenultimate);
        }
    }

    /// <summary>Every folder is a model of some case (CLIP here, AutoencoderTiny in <see cref="AutoencoderTinyTranscriptTests"/>).</summary>
    [Fact]
    public void EveryVariantFolderHasCases()
    {
        var models = Transcript.AssertEveryVariantFolderHasCases(Transcript.Models("clip_cases", "taesd_cases"));
        Assert.Contains("clip-sd2-gelu-legacy-eos", models);
        Assert.Contains("taesd-3stage-up3", models);
    }
}
