using DiffusersSharp.Models;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// The published configurations of SD 2.1 (768, v), SDXL base 1.0 and SDXL refiner 1.0: the original YAMLs' model
/// sections (Stability-AI/stablediffusion <c>v2-inference-v.yaml</c>, Stability-AI/generative-models
/// <c>sd_xl_base.yaml</c>, <c>sd_xl_refiner.yaml</c>; the keys the conversion reads; the refiner's partly in flow style, to exercise the reader) and the
/// diffusers configs of stabilityai/stable-diffusion-2-1, stable-diffusion-xl-base-1.0 and -refiner-1.0 (non-default keys).
/// </summary>
internal static class PublishedConfigs
{
    public const string Sd21Yaml = """
        model:
          base_learning_rate: 1.0e-4
          target: ldm.models.diffusion.ddpm.LatentDiffusion
          params:
            parameterization: "v"
            linear_start: 0.00085
            linear_end: 0.0120
            timesteps: 1000
            first_stage_key: "jpg"
            scale_factor: 0.18215
            use_ema: False # we set this to false because this is an inference only config

            unet_config:
              target: ldm.modules.diffusionmodules.openaimodel.UNetModel
              params:
                use_checkpoint: True
                use_fp16: True
                image_size: 32 # unused
                in_channels: 4
                out_channels: 4
                model_channels: 320
                attention_resolutions: [ 4, 2, 1 ]
                num_res_blocks: 2
                channel_mult: [ 1, 2, 4, 4 ]
                num_head_channels: 64 # need to fix for flash-attn
                use_spatial_transformer: True
                use_linear_in_transformer: True
                transformer_depth: 1
                context_dim: 1024
                legacy: False

            first_stage_config:
              target: ldm.models.autoencoder.AutoencoderKL
              params:
                embed_dim: 4
                monitor: val/rec_loss
                ddconfig:
                  #attn_type: "vanilla-xformers"
                  double_z: true
                  z_channels: 4
                  resolution: 256
                  in_channels: 3
                  out_ch: 3
                  ch: 128
                  ch_mult:
                  - 1
                  - 2
                  - 4
                  - 4
                  num_res_blocks: 2
                  attn_resolutions: []
                  dropout: 0.0
                lossconfig:
                  target: torch.nn.Identity

            cond_stage_config:
              target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
              params:
                freeze: True
                layer: "penultimate"
        """;

    public const string XlBaseYaml = """
        model:
          target: sgm.models.diffusion.DiffusionEngine
          params:
            scale_factor: 0.13025
            disable_first_stage_autocast: True

            network_config:
              target: sgm.modules.diffusionmodules.openaimodel.UNetModel
              params:
                adm_in_channels: 2816
                num_classes: sequential
                use_checkpoint: True
                in_channels: 4
                out_channels: 4
                model_channels: 320
                attention_resolutions: [4, 2]
                num_res_blocks: 2
                channel_mult: [1, 2, 4]
                num_head_channels: 64
                use_linear_in_transformer: True
                transformer_depth: [1, 2, 10]  # note: the first is unused (due to attn_res starting at 2) 32, 16, 8 --> 64, 32, 16
                context_dim: 2048
                spatial_transformer_attn_type: softmax-xformers

            conditioner_config:
              target: sgm.modules.GeneralConditioner
              params:
                emb_models:
                  # crossattn cond
                  - is_trainable: False
                    input_key: txt
                    target: sgm.modules.encoders.modules.FrozenCLIPEmbedder
                    params:
                      layer: hidden
                      layer_idx: 11
                  # crossattn and vector cond
                  - is_trainable: False
                    input_key: txt
                    target: sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2
                    params:
                      arch: ViT-bigG-14
                      version: laion2b_s39b_b160k
                      freeze: True
                      layer: penultimate
                      always_return_pooled: True
                      legacy: False
                  # vector cond
                  - is_trainable: False
                    input_key: original_size_as_tuple
                    target: sgm.modules.encoders.modules.ConcatTimestepEmbedderND
                    params:
                      outdim: 256  # multiplied by two

            first_stage_config:
              target: sgm.models.autoencoder.AutoencoderKLInferenceWrapper
              params:
                embed_dim: 4
                ddconfig:
                  attn_type: vanilla-xformers
                  double_z: true
                  z_channels: 4
                  resolution: 256
                  in_channels: 3
                  out_ch: 3
                  ch: 128
                  ch_mult: [1, 2, 4, 4]
                  num_res_blocks: 2
                  attn_resolutions: []
                  dropout: 0.0
        """;

    public const string XlRefinerYaml = """
        model:
          target: sgm.models.diffusion.DiffusionEngine
          params:
            scale_factor: 0.13025
            network_config:
              target: sgm.modules.diffusionmodules.openaimodel.UNetModel
              params:
                adm_in_channels: 2560
                num_classes: sequential
                in_channels: 4
                out_channels: 4
                model_channels: 384
                attention_resolutions: [4, 2]
                num_res_blocks: 2
                channel_mult: [1, 2, 4, 4]
                num_head_channels: 64
                use_linear_in_transformer: True
                transformer_depth: 4
                context_dim: [1280, 1280, 1280, 1280]
            conditioner_config:
              target: sgm.modules.GeneralConditioner
              params:
                emb_models:
                  - is_trainable: False
                    input_key: txt
                    target: sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2
                    params: {arch: ViT-bigG-14, version: laion2b_s39b_b160k, legacy: False, freeze: True, layer: penultimate, always_return_pooled: True}
                  - is_trainable: False
                    input_key: aesthetic_score
                    target: sgm.modules.encoders.modules.ConcatTimestepEmbedderND
                    params:
                      outdim: 256
            first_stage_config:
              target: sgm.models.autoencoder.AutoencoderKL
              params:
                embed_dim: 4
                ddconfig: {double_z: true, z_channels: 4, resolution: 256, in_channels: 3, out_ch: 3, ch: 128,
                           ch_mult: [1, 2, 4, 4], num_res_blocks: 2, attn_resolutions: [], dropout: 0.0}
        """;

    public static readonly UNet2DConditionModelConfig Sd21Unet = new()
    {
        SampleSize = [96], AttentionHeadDim = [5, 10, 20, 20], BlockOutChannels = [320, 640, 1280, 1280], CrossAttentionDim = [1024],
        UseLinearProjection = true, UpcastAttention = true,
    };

    public static readonly UNet2DConditionModelConfig XlBaseUnet = new()
    {
        SampleSize = [128], AttentionHeadDim = [5, 10, 20], BlockOutChannels = [320, 640, 1280], CrossAttentionDim = [2048],
        DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], UpBlockTypes = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        TransformerLayersPerBlock = [1, 2, 10], UseLinearProjection = true, AdditionEmbedType = "text_time", AdditionTimeEmbedDim = 256,
        ProjectionClassEmbeddingsInputDim = 2816,
    };

    public static readonly UNet2DConditionModelConfig XlRefinerUnet = new()
    {
        SampleSize = [128], AttentionHeadDim = [6, 12, 24, 24], BlockOutChannels = [384, 768, 1536, 1536], CrossAttentionDim = [1280],
        DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        TransformerLayersPerBlock = [4], UseLinearProjection = true, AdditionEmbedType = "text_time", AdditionTimeEmbedDim = 256,
        ProjectionClassEmbeddingsInputDim = 2560,
    };

    public static AutoencoderKLConfig Vae(int sampleSize, double scaling) => new()
    {
        SampleSize = [sampleSize], BlockOutChannels = [128, 256, 512, 512], LayersPerBlock = 2, ScalingFactor = scaling,
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", 4).ToArray(), UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", 4).ToArray(),
    };

    /// <summary>openai/clip-vit-large-patch14's text config (SD 1.x, SDXL's text_encoder).</summary>
    public static readonly CLIPTextConfig ClipL = new()
    {
        HiddenSize = 768, IntermediateSize = 3072, NumHiddenLayers = 12, NumAttentionHeads = 12, ProjectionDim = 768,
        HiddenAct = "quick_gelu", BosTokenId = 0, EosTokenId = 2, PadTokenId = 1,
    };

    /// <summary>stabilityai/stable-diffusion-2-1's text_encoder (OpenCLIP ViT-H without its last layer).</summary>
    public static readonly CLIPTextConfig OpenClipH = new()
    {
        HiddenSize = 1024, IntermediateSize = 4096, NumHiddenLayers = 23, NumAttentionHeads = 16, ProjectionDim = 512,
        HiddenAct = "gelu", BosTokenId = 0, EosTokenId = 2, PadTokenId = 1,
    };

    /// <summary>SDXL's text_encoder_2 (OpenCLIP ViT-bigG, CLIPTextModelWithProjection).</summary>
    public static readonly CLIPTextConfig OpenClipBigG = new()
    {
        HiddenSize = 1280, IntermediateSize = 5120, NumHiddenLayers = 32, NumAttentionHeads = 20, ProjectionDim = 1280,
        HiddenAct = "gelu", BosTokenId = 0, EosTokenId = 2, PadTokenId = 1,
    };
}
