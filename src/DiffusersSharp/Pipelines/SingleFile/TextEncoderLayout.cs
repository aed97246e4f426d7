using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// One text encoder of a single file: its diffusers component name (<c>text_encoder</c>, <c>text_encoder_2</c>), config,
/// whether it is a <see cref="CLIPTextModelWithProjection"/>, whether the file stores it as OpenCLIP (fused attention
/// projections) rather than transformers' CLIP, its key map, and the tokenizer that goes with it (component name, pad token).
/// </summary>
public sealed record TextEncoderLayout(string Name, CLIPTextConfig Config, bool WithProjection, bool OpenClip, KeyMap Keys,
    string TokenizerName, string PadToken);
