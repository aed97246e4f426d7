namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>The model families a single file can hold (inpainting models are these with 9 UNet input channels).</summary>
public enum StableDiffusionFamily
{
    /// <summary>SD 1.x: OpenAI CLIP ViT-L text encoder (<c>cond_stage_model.transformer.</c>), 8 heads per attention.</summary>
    StableDiffusion1,

    /// <summary>SD 2.x: OpenCLIP ViT-H (<c>cond_stage_model.model.</c>), 64-channel heads, linear projections, v-prediction (768).</summary>
    StableDiffusion2,

    /// <summary>SDXL base: CLIP ViT-L and OpenCLIP bigG (<c>conditioner.embedders.0/1.</c>), addition embeddings.</summary>
    StableDiffusionXL,

    /// <summary>SDXL refiner: OpenCLIP bigG only (<c>conditioner.embedders.0.model.</c>), aesthetic-score conditioning.</summary>
    StableDiffusionXLRefiner,
}
