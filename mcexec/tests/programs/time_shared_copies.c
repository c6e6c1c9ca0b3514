/*
 * Two threads copy 4 MiB buffers with glibc's memcpy and check every word,
 * for <seconds> (default 2): on a 1-CPU LWK they time-share the CPU, so
 * thread switches land in the middle of copies. Prints per-thread counts
 * and "ok" or "CORRUPT" (exit 1). Built with -fno-tree-vectorize so the
 * check itself uses no vector registers.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define WORDS (1u << 19) /* 4 MiB */
static double secs;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void *run(void *arg){
  uintptr_t id=(uintptr_t)arg; uint64_t *s=malloc(WORDS*8),*d=malloc(WORDS*8); long it=0, bad=0;
  for(size_t i=0;i<WORDS;i++) s[i]=((id+1)<<56)^(i*0x9e3779b97f4a7c15ull);
  double t0=now();
  while(now()-t0<secs){ memcpy(d,s,WORDS*8); for(size_t i=0;i<WORDS;i++) if(((volatile uint64_t*)d)[i]!=s[i]){bad++;break;} it++; }
  printf("thread %lu: %ld copies, %ld bad\n",(unsigned long)id,it,bad); return (void*)bad;
}
int main(int c,char**v){ secs=c>1?atof(v[1]):2; pthread_t t[2]; void*r; long bad=0;
  for(uintptr_t i=0;i<2;i++) pthread_create(&t[i],0,run,(void*)i);
  for(int i=0;i<2;i++){pthread_join(t[i],&r); bad+=(long)r;}
  printf("%s\n", bad?"CORRUPT":"ok"); return bad!=0; }
